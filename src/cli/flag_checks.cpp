#include "cli/flag_checks.h"

#include <cerrno>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "core/error.h"
#include "engine/config/config_io.h"

namespace tessera::cli {

namespace {

// "" when `text` is a plain decimal integer that fits int64 (or uint64 when `is_unsigned`), else
// why not. Leading zeros and a '+' are dropped, so CLI11 does not read "010" as octal.
std::string integer_problem(std::string& text, bool is_unsigned) {
  static const std::regex kSigned("[+-]?[0-9]+"), kUnsigned("[+]?[0-9]+");
  if (!std::regex_match(text, is_unsigned ? kUnsigned : kSigned))
    return "'" + text + "' is not " + (is_unsigned ? "a whole number >= 0" : "a whole number");
  errno = 0;
  if (is_unsigned) (void)std::strtoull(text.c_str(), nullptr, 10);
  else (void)std::strtoll(text.c_str(), nullptr, 10);
  if (errno == ERANGE) return "'" + text + "' is out of range";
  const bool negative = text[0] == '-';
  const size_t digits = text.find_first_not_of("+-");
  const size_t first = std::min(text.find_first_not_of('0', digits), text.size() - 1);
  text = (negative ? "-" : "") + text.substr(first);
  return "";
}

std::string float_problem(const std::string& text) {
  static const std::regex kDecimal("[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?");
  if (!std::regex_match(text, kDecimal)) return "'" + text + "' is not a number";
  errno = 0;
  const double value = std::strtod(text.c_str(), nullptr);
  return errno == ERANGE && std::isinf(value) ? "'" + text + "' is out of range" : "";
}

void add_checks(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    const bool is_unsigned = type.starts_with("UINT");
    if (is_unsigned || type.starts_with("INT"))
      option->check(CLI::Validator([is_unsigned](std::string& s) { return integer_problem(s, is_unsigned); }, "", ""));
    else if (type.starts_with("FLOAT"))
      option->check(CLI::Validator([](std::string& s) { return float_problem(s); }, "", ""));
  }
  for (CLI::App* sub : app.get_subcommands({})) add_checks(*sub);
}

}  // namespace

void check_flag_names(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) return;
  const CLI::App* sub = nullptr;
  for (const CLI::App* s : app.get_subcommands({}))
    if (s->get_name() == argv[1]) sub = s;
  if (!sub) return;
  std::vector<std::string> flags;
  for (const CLI::Option* option : sub->get_options())
    for (const std::string& name : option->get_lnames()) flags.push_back("--" + name);
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;  // what follows is positional
    if (!arg.starts_with("--") || arg.size() == 2) continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (sub->get_option_no_throw(name) != nullptr) continue;
    const std::string hint = config::closest(name, flags);
    fail("{}: unknown flag {}{} (see tessera {} --help)", sub->get_name(), name,
         hint.empty() ? "" : " (did you mean " + hint + "?)", sub->get_name());
  }
}

namespace {

// `text` as a number when float_problem() finds none.
double number(const std::string& text) { return std::strtod(text.c_str(), nullptr); }

}  // namespace

CLI::Validator positive() {
  return CLI::Validator([](std::string& s) -> std::string {
    if (std::string problem = float_problem(s); !problem.empty()) return problem;
    return number(s) > 0 ? "" : s + " is not positive";
  }, "> 0", "positive");
}

CLI::Validator non_negative() {
  return CLI::Validator([](std::string& s) -> std::string {
    if (std::string problem = float_problem(s); !problem.empty()) return problem;
    return number(s) >= 0 ? "" : s + " is negative";
  }, ">= 0", "non_negative");
}

CLI::Validator in_range(double lo, double hi, bool exclusive_low) {
  const std::string range = fmt::format("{}{}, {}]", exclusive_low ? "(" : "[", lo, hi);
  return CLI::Validator([=](std::string& s) -> std::string {
    if (std::string problem = float_problem(s); !problem.empty()) return problem;
    const double v = number(s);
    return (exclusive_low ? v > lo : v >= lo) && v <= hi ? "" : s + " is not in " + range;
  }, range, "in_range");
}

void add_number_checks(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands({})) add_checks(*sub);
}

}  // namespace tessera::cli

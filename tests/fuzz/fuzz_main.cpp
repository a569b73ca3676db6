// tessera_fuzz: runs a driver (drivers.h) over deterministic mutants (mutator.h) of its seeds.
//
//   tessera_fuzz DRIVER|all [--mutants N] [--seed S] [--timeout-ms T] [--save-dir D] [--verbose]
//   tessera_fuzz DRIVER --replay FILE      one input, in this process (for a debugger)
//   tessera_fuzz --list
//
// Mutants run in a child process, many per child; a shared page says which one is running, so a
// signal (a crash) or the per-mutant timer (a hang) is pinned on that mutant, which is saved and
// reported, and a fresh child carries on after it. A clean Error is a pass; any other exception
// (std::bad_alloc, a json or std::out_of_range leaking out) is a failure too. The child's address
// space is capped, so a runaway allocation shows as bad_alloc instead of swapping the machine.
// Exit status 1 when any mutant failed.
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <typeinfo>

#include <spdlog/spdlog.h>

#include "fuzz/drivers.h"
#include "fuzz/mutator.h"

namespace tessera::fuzz {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string driver;
  uint64_t mutants = 1000, seed = 1;
  long timeout_ms = 5000;
  std::string save_dir = "fuzz-failures";
  std::string replay;
  bool verbose = false;
};

// What the child tells the parent, in a shared anonymous page.
struct Shared {
  uint64_t current;              // the mutant being parsed
  uint64_t rejected, accepted;   // outcomes so far, over all children
  char exception[480];           // a non-Error exception: its type and message
};

enum class Outcome { rejected, accepted, exception };

Outcome run_one(const Driver& d, const std::string& input, const std::string& scratch, std::string& message) {
  try {
    d.parse(input, scratch);
    return Outcome::accepted;
  } catch (const std::exception& e) {
    if (d.clean_error(e)) return Outcome::rejected;
    message = std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    message = "an exception that is not a std::exception";
  }
  return Outcome::exception;
}

void set_timer(long ms) {
  itimerval t{};
  t.it_value.tv_sec = ms / 1000;
  t.it_value.tv_usec = (ms % 1000) * 1000;
  ::setitimer(ITIMER_REAL, &t, nullptr);
}

// The child: mutants [first, end) until one throws what it must not (exit 3) or all are done.
[[noreturn]] void child(const Driver& d, const std::vector<std::string>& corpus, const Options& o, uint64_t first,
                        Shared* shared, const std::string& scratch) {
  rlimit as{size_t{3} << 30, size_t{3} << 30};
  ::setrlimit(RLIMIT_AS, &as);
  for (uint64_t i = first; i < o.mutants; ++i) {
    shared->current = i;
    const std::string input = mutant(corpus, o.seed, i);
    std::string message;
    set_timer(o.timeout_ms);
    const Outcome r = run_one(d, input, scratch, message);
    set_timer(0);
    if (r == Outcome::exception) {
      std::snprintf(shared->exception, sizeof shared->exception, "%s", message.c_str());
      std::fflush(nullptr);
      ::_exit(3);
    }
    ++(r == Outcome::accepted ? shared->accepted : shared->rejected);
  }
  std::fflush(nullptr);
  ::_exit(0);
}

std::string save(const Options& o, const Driver& d, uint64_t index, const std::string& input) {
  fs::create_directories(o.save_dir);
  const std::string path =
      (fs::path(o.save_dir) / (d.name + "-seed" + std::to_string(o.seed) + "-" + std::to_string(index) + ".bin"))
          .string();
  std::ofstream(path, std::ios::binary) << input;
  return path;
}

int fuzz(const Driver& d, const Options& o) {
  const fs::path scratch = fs::temp_directory_path() / ("tessera-fuzz-" + d.name + "-" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  const std::vector<std::string> corpus = d.seeds(scratch.string());
  if (corpus.empty()) {
    std::fprintf(stderr, "fuzz %s: no seed inputs found\n", d.name.c_str());
    return 1;
  }
  // The seeds themselves should parse (else the mutants only exercise the first checks); said in
  // the summary, and with --verbose why not.
  size_t seeds_parsed = 0;
  for (size_t k = 0; k < corpus.size(); ++k) {
    std::string message;
    try {
      d.parse(corpus[k], scratch.string());
      ++seeds_parsed;
    } catch (const std::exception& e) {
      if (o.verbose) std::fprintf(stderr, "fuzz %s: seed %zu is rejected: %s\n", d.name.c_str(), k, e.what());
    }
  }
  auto* shared = static_cast<Shared*>(
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::memset(shared, 0, sizeof(Shared));
  const auto start = std::chrono::steady_clock::now();
  int failures = 0;
  uint64_t next = 0;
  while (next < o.mutants && failures < 20) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) child(d, corpus, o, next, shared, scratch.string());
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) break;
    const uint64_t bad = shared->current;
    std::string what;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
      what = "hung (no answer in " + std::to_string(o.timeout_ms) + " ms)";
    else if (WIFSIGNALED(status))
      what = std::string("crashed with signal ") + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
      what = std::string("threw ") + shared->exception;
    else
      what = "exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    const std::string path = save(o, d, bad, mutant(corpus, o.seed, bad));
    std::fprintf(stderr, "fuzz %s: mutant %lu (seed %lu) %s; saved as %s (replay: tessera_fuzz %s --replay %s)\n",
                 d.name.c_str(), static_cast<unsigned long>(bad), static_cast<unsigned long>(o.seed), what.c_str(),
                 path.c_str(), d.name.c_str(), path.c_str());
    ++failures;
    next = bad + 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("fuzz %s: %lu mutants of %zu seeds (%zu parse; seed %lu) in %.1f s: %lu rejected with a clean error, "
              "%lu parsed, %d failed\n",
              d.name.c_str(), static_cast<unsigned long>(o.mutants), corpus.size(), seeds_parsed,
              static_cast<unsigned long>(o.seed),
              seconds, static_cast<unsigned long>(shared->rejected), static_cast<unsigned long>(shared->accepted),
              failures);
  ::munmap(shared, sizeof(Shared));
  fs::remove_all(scratch);
  return failures == 0 ? 0 : 1;
}

int replay(const Driver& d, const Options& o) {
  std::ifstream in(o.replay, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "%s: cannot open\n", o.replay.c_str());
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const fs::path scratch = fs::temp_directory_path() / ("tessera-fuzz-replay-" + std::to_string(::getpid()));
  fs::create_directories(scratch);
  std::string message;
  const Outcome r = run_one(d, ss.str(), scratch.string(), message);
  fs::remove_all(scratch);
  std::printf("%s\n", r == Outcome::accepted ? "parsed" : r == Outcome::rejected ? "rejected with a clean error"
                                                                                  : ("threw " + message).c_str());
  return r == Outcome::exception ? 1 : 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: tessera_fuzz DRIVER|all [--mutants N] [--seed S] [--timeout-ms T] [--save-dir D]\n"
               "       tessera_fuzz DRIVER --replay FILE\n       tessera_fuzz --list\n");
  return 2;
}

int main_impl(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--list") {
      for (const Driver& d : drivers()) std::printf("%-14s %s\n", d.name.c_str(), d.parses.c_str());
      return 0;
    }
    if (a == "--mutants") o.mutants = std::stoull(value());
    else if (a == "--seed") o.seed = std::stoull(value());
    else if (a == "--timeout-ms") o.timeout_ms = std::stol(value());
    else if (a == "--save-dir") o.save_dir = value();
    else if (a == "--replay") o.replay = value();
    else if (a == "--verbose") o.verbose = true;
    else if (!a.starts_with("--") && o.driver.empty()) o.driver = a;
    else return usage();
  }
  if (o.driver.empty()) return usage();
  spdlog::set_level(spdlog::level::off);  // parsers warn; the verdicts are what counts
  int status = 0, found = 0;
  for (const Driver& d : drivers()) {
    if (o.driver != "all" && o.driver != d.name) continue;
    ++found;
    status |= o.replay.empty() ? fuzz(d, o) : replay(d, o);
  }
  if (found == 0) {
    std::fprintf(stderr, "no driver '%s' (see --list)\n", o.driver.c_str());
    return 2;
  }
  return status;
}

}  // namespace
}  // namespace tessera::fuzz

int main(int argc, char** argv) { return tessera::fuzz::main_impl(argc, argv); }

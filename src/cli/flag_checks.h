// Checks every subcommand's command line gets before its own: a flag the subcommand does not have
// is named (with the closest one it has) before CLI11 would complain about a missing required
// flag instead; and every number is a plain decimal that fits its type (CLI11 alone would read
// "-1" as 2^64 - 1 for an unsigned flag, "010" as 8, "0x10" as 16, wrap 99999999999999999999 to
// the largest value, and take "nan" and "inf" as numbers).
#pragma once

#include <CLI/CLI.hpp>

namespace tessera::cli {

// Throws a tessera::Error naming the flag of argv that the chosen subcommand lacks.
void check_flag_names(const CLI::App& app, int argc, char** argv);

// Adds the number checks to every integer and floating option of `app`'s subcommands.
void add_number_checks(CLI::App& app);

// Range checks whose errors read "--flag: 0 is not positive" (CLI11's own print 0 to 1.8e308).
CLI::Validator positive();
CLI::Validator non_negative();
// [lo, hi], or (lo, hi] with `exclusive_low`.
CLI::Validator in_range(double lo, double hi, bool exclusive_low = false);

}  // namespace tessera::cli

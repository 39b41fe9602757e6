//! The blindspot command line. Exit codes: 0 success, 1 no collision exists for this model and
//! image, 2 bad input or any other error (`cli::EXIT_CODES`, printed by `--help`).

mod cli;

fn main() {
    cli::main()
}

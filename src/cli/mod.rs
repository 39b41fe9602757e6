//! The blindspot command line: parse, call the library, render. Only `main.rs` uses it.

mod args;
mod commands;

use anyhow::Result;
use args::{Cli, Command};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

/// Exit codes as `--help` lists them.
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 no collision exists (the model ignores no direction, or the pixel range leaves no room on this image); 2 bad input, an unsupported model, or any other error.";

/// Parses the arguments, runs the command and exits with its code.
pub fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go out as clap writes them; a bad argument is one line, like every
        // other refusal.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("blindspot: {}", as_flags(first.trim_start_matches("error: ")));
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli) {
        let msg = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
        eprintln!("blindspot: {}", as_flags(&msg));
        std::process::exit(exit_code(&e));
    }
}

fn run(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Demo(a) => commands::run_demo(a, quiet),
        Command::Audit(a) => commands::run_audit(a, quiet),
        Command::Collide(a) => commands::run_collide(a, quiet),
        Command::Attack(a) => commands::run_attack(a, quiet),
        Command::Survey(a) => commands::run_survey(a, quiet),
        Command::Explain(a) => commands::run_explain(a, quiet),
        Command::Compare(a) => commands::run_compare(a, quiet),
        Command::Verify(a) => commands::run_verify(a, quiet),
    }
}

pub fn progress_bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The library names its parameters in backquotes (`input_shape`); on the command line they are
/// flags (--input-shape). Anything else in backquotes stays as written.
pub fn as_flags(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let is_parameter = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_parameter {
            out.push_str("--");
            out.push_str(&name.replace('_', "-"));
        } else {
            out.push_str(&rest[open..open + close + 2]);
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::as_flags;

    #[test]
    fn parameters_become_flags_and_nothing_else_changes() {
        assert_eq!(as_flags("give `input_shape`"), "give --input-shape");
        assert_eq!(
            as_flags("`mode` target needs `target` IMAGE"),
            "--mode target needs --target IMAGE"
        );
        assert_eq!(
            as_flags("see `blindspot verify` for the names"),
            "see `blindspot verify` for the names"
        );
        assert_eq!(as_flags("a lone ` stays"), "a lone ` stays");
        assert_eq!(as_flags("no quotes"), "no quotes");
    }
}

/// Exit code 1 where the answer is that no collision exists (no exact collision, no room in the
/// pixel box); 2 for every failure.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if blindspot::error::is_no_collision(e) {
        1
    } else {
        2
    }
}

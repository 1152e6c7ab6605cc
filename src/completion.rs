//! `keelson completion bash|zsh|fish`: shell completion scripts for every command and flag.

use std::io::Write;

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to generate the completion script for.
    #[arg(value_enum)]
    shell: CompletionShell,
}

/// Writes the completion script for `shell` to `out`.
pub fn generate<C: CommandFactory>(args: &CompletionArgs, out: &mut dyn Write) {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = C::command();
    clap_complete::generate(shell, &mut cmd, "keelson", out);
}

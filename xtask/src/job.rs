//! Running commands as named, timed steps of a job, with the summary printed at the end.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

/// The toolchain's own cargo when run through `cargo xtask`, so every step
/// uses the same toolchain as the xtask build itself.
///
/// Without incremental compilation unless the caller's environment asks for
/// it: xtask's builds are whole runs (CI, benches), where incremental data
/// only costs disk (gigabytes for the test build, and a CI machine short of
/// disk killed the linker).
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    if std::env::var_os("CARGO_INCREMENTAL").is_none() {
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// Runs `command` with inherited stdio, echoing it first; fails unless it exits successfully.
pub fn run(command: &mut Command) -> Result<()> {
    let shown = display(command);
    eprintln!("$ {shown}");
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    ensure!(status.success(), "`{shown}` failed ({status})");
    Ok(())
}

/// Runs `command` quietly and returns its stdout, or `None` if it cannot run or fails.
/// Used to probe for installed tools.
pub fn probe(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The command line as a shell would show it, with the program's bare name
/// (`cargo`, not the toolchain path in `$CARGO`).
pub fn display(command: &Command) -> String {
    let program = command.get_program();
    let name = Path::new(program).file_name().unwrap_or(program);
    std::iter::once(name)
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sequence of steps run from the workspace root, failing fast.
#[derive(Debug)]
pub struct Job {
    root: PathBuf,
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    name: String,
    elapsed: Duration,
    ok: bool,
}

impl Job {
    pub fn new(root: &Path) -> Job {
        Job {
            root: root.to_owned(),
            steps: Vec::new(),
        }
    }

    /// Runs `work` as the step `name`, recording its time and outcome.
    pub fn step<T>(&mut self, name: &str, work: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        eprintln!("\n==> {name}");
        let started = Instant::now();
        let result = work(&self.root).with_context(|| format!("step `{name}` failed"));
        self.steps.push(Step {
            name: name.to_owned(),
            elapsed: started.elapsed(),
            ok: result.is_ok(),
        });
        result
    }

    /// The workspace root, where steps run.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs `command` from the workspace root as the step `name`.
    pub fn command(&mut self, name: &str, mut command: Command) -> Result<()> {
        self.step(name, |root| run(command.current_dir(root)))
    }

    pub fn print_summary(&self, title: &str) {
        eprintln!("\n{title} summary:");
        for step in &self.steps {
            let outcome = if step.ok { "ok" } else { "FAILED" };
            eprintln!(
                "  {outcome:<6} {:>7.1}s  {}",
                step.elapsed.as_secs_f64(),
                step.name
            );
        }
    }
}

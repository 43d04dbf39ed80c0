//! `jhack import PATH...`: files and folders into the library, with a progress bar on
//! a terminal and plain lines otherwise; every failed file named with its reason,
//! then a summary. The good files are imported whatever happens to the others.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::args::{GlobalArgs, ImportArgs};
use super::context::{Context, Owner, ask_owner};
use super::error::{CliError, chain};
use crate::app::control::{Request, Response};
use crate::app::import::{ImportError, ImportOptions, Imported, collect_files, import_file};

pub fn run(g: &GlobalArgs, args: &ImportArgs) -> Result<(), CliError> {
    if !args.gain.is_finite() || !(-60.0..=40.0).contains(&args.gain) {
        return Err(CliError::input(format!(
            "--gain: {} dB is out of range (-60 to 40)",
            args.gain
        )));
    }
    let ctx = Context::load(g)?;
    let (files, mut failures) = collect_files(&args.paths);
    if (args.name.is_some() || args.key.is_some()) && files.len() > 1 {
        return Err(CliError::input(format!(
            "--name and --key name one sound, but {} files were given",
            files.len()
        )));
    }
    let lib = match ctx.library_or_owner()? {
        Owner::Here(lib) => lib,
        Owner::Running(socket) => return import_through(&socket, args),
    };
    let opts = ImportOptions {
        name: args.name.clone(),
        tags: args.tags.clone(),
        key: args.key.clone(),
        gain_db: args.gain,
    };
    let tty = std::io::stderr().is_terminal();
    let bar = tty.then(|| {
        let bar = ProgressBar::new(files.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let report = |line: String| match &bar {
        Some(b) => b.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    };
    for f in &failures {
        report(format!("jhack: error: {}", chain(f)));
    }
    let (mut imported, mut present) = (0usize, 0usize);
    let mut library_failed = false;
    for path in &files {
        if let Some(b) = &bar {
            b.set_message(path.display().to_string());
        }
        match import_file(&lib, path, &opts) {
            Ok(Imported::New(m)) => {
                imported += 1;
                if bar.is_none() {
                    outln!(
                        "imported {} ({}) from {}",
                        m.name,
                        m.id.short(),
                        path.display()
                    );
                }
            }
            Ok(Imported::AlreadyPresent(m)) => {
                present += 1;
                if bar.is_none() {
                    outln!("already present: {} is {}", path.display(), m.name);
                }
            }
            Err(e) => {
                report(format!("jhack: error: {}", chain(&e)));
                library_failed |= !is_input_fault(&e);
                failures.push(e);
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    outln!(
        "imported {imported}, already present {present}, failed {}",
        failures.len()
    );
    // Each failure has had its own line: the command ends with its status only.
    if library_failed {
        Err(CliError::failure(""))
    } else if !failures.is_empty() {
        Err(CliError::input(""))
    } else {
        Ok(())
    }
}

/// Whether a file failed through the input's fault (status 2): a bad file, or a name
/// or key the library refuses, as [`library_error`](super::context::library_error)
/// judges them; anything else is the library's failure (status 1).
fn is_input_fault(e: &ImportError) -> bool {
    use crate::library::{LibraryError, StoreError as S};
    e.is_bad_file()
        || matches!(
            e,
            ImportError::Library {
                source: LibraryError::Store(S::NameTaken(_) | S::KeyTaken { .. }),
                ..
            }
        )
}

impl From<ImportError> for CliError {
    fn from(e: ImportError) -> Self {
        if is_input_fault(&e) {
            CliError::input(chain(&e))
        } else {
            CliError::failure(chain(&e))
        }
    }
}

/// The import done by the running jhack that owns the home.
fn import_through(socket: &std::path::Path, args: &ImportArgs) -> Result<(), CliError> {
    let cwd = std::env::current_dir().map_err(|e| CliError::failure(format!("cwd: {e}")))?;
    let req = Request::Import {
        paths: args.paths.iter().map(|p| cwd.join(p)).collect(),
        name: args.name.clone(),
        tags: args.tags.clone(),
        key: args.key.clone(),
        gain_db: args.gain,
    };
    match ask_owner(socket, &req)? {
        Response::Imported {
            imported,
            already_present,
            failed,
        } => {
            for f in &failed {
                eprintln!("jhack: error: {f}");
            }
            outln!(
                "imported {imported}, already present {already_present}, failed {}",
                failed.len()
            );
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::input(""))
            }
        }
        other => Err(CliError::failure(format!("unexpected reply: {other:?}"))),
    }
}

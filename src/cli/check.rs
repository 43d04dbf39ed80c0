//! `jhack check`: verifies every blob against its id and every record against the
//! indexes; one line per problem; exit status 1 if there is any.

use super::args::GlobalArgs;
use super::context::{Context, library_error};
use super::error::CliError;

pub fn run(g: &GlobalArgs) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let lib = ctx.open_library()?;
    let report = lib.check().map_err(library_error)?;
    for p in &report.problems {
        outln!("problem: {p}");
    }
    let mb = report.bytes as f64 / 1e6;
    if report.unlisted_blobs > 0 {
        outln!(
            "note: {} stored files belong to no sound (an import was interrupted); importing the file again adopts it",
            report.unlisted_blobs
        );
    }
    if report.is_clean() {
        let mut elsewhere = Vec::new();
        if report.remote > 0 {
            elsewhere.push(format!(
                "{} remote (their files on other machines)",
                report.remote
            ));
        }
        if report.shared_here > 0 {
            elsewhere.push(format!(
                "{} files of sounds shared with you",
                report.shared_here
            ));
        }
        let also = if elsewhere.is_empty() {
            String::new()
        } else {
            format!("; {}", elsewhere.join(", "))
        };
        outln!(
            "checked {} sounds ({mb:.1} MB): all intact{also}",
            report.sounds_ok
        );
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "{} problems in the library ({} sounds intact)",
            report.problems.len(),
            report.sounds_ok
        )))
    }
}

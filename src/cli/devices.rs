//! `jhack devices`: hosts and devices, as a table or JSON.

use super::error::CliError;
use crate::audio::list_devices;

pub fn run(json: bool) -> Result<(), CliError> {
    let devices = list_devices();
    if json {
        let s = serde_json::to_string_pretty(&devices).map_err(CliError::failure)?;
        outln!("{s}");
        return Ok(());
    }
    if devices.is_empty() {
        outln!("no audio devices found (jhack will use the silent null backend)");
        return Ok(());
    }
    let hw = devices
        .iter()
        .map(|d| d.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    outln!(
        "{:>3}  {:<hw$} {:<40} {:>3} {:>3} {:>7}  default",
        "#",
        "host",
        "name",
        "in",
        "out",
        "rate"
    );
    for d in &devices {
        let mut name = d.name.clone();
        if d.id != d.name && !d.id.is_empty() {
            name = format!("{} ({})", d.name, d.id);
        }
        let default = match (d.default_input, d.default_output) {
            (true, true) => "in+out",
            (true, false) => "in",
            (false, true) => "out",
            _ => "",
        };
        let rate = d.default_rate.map_or("-".to_string(), |r| r.to_string());
        outln!(
            "{:>3}  {:<hw$} {:<40} {:>3} {:>3} {:>7}  {default}",
            d.index,
            d.host,
            truncate(&name, 40),
            d.input_channels,
            d.output_channels,
            rate
        );
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

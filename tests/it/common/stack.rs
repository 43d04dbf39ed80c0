//! A private virtual audio stack of a test's own, for a test that must break its
//! sound server (kill it, restart it): the shared stack the other tests use is never
//! touched. Started with `scripts/audio-stack/start.sh` in a directory of its own and
//! stopped (directory removed) on drop.

use std::process::Command;

pub struct PrivateStack {
    dir: std::path::PathBuf,
    env: Vec<(String, String)>,
    unset: Vec<String>,
}

/// The path of one of the audio stack's scripts.
pub fn script(name: &str) -> String {
    format!("{}/scripts/audio-stack/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl PrivateStack {
    /// Starts a stack in a fresh directory named after `tag`; `Err` says why not.
    pub fn start(tag: &str) -> Result<PrivateStack, String> {
        let dir = std::env::temp_dir().join(format!("jhack-audio-{tag}-{}", std::process::id()));
        let out = Command::new(script("start.sh"))
            .env("JHACK_AUDIO_DIR", &dir)
            .output()
            .map_err(|e| format!("start.sh: {e}"))?;
        // Stopped on drop from here on, even when the start failed half-way.
        let mut stack = PrivateStack {
            dir,
            env: Vec::new(),
            unset: Vec::new(),
        };
        if !out.status.success() {
            return Err(format!(
                "start.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // `export NAME=value` (shell-quoted with %q: the stack's paths have no quoting
        // in them, which is checked) and one `unset A B ...` line.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(rest) = line.strip_prefix("export ") {
                let (k, v) = rest.split_once('=').ok_or(format!("odd line {line:?}"))?;
                if v.contains(['\\', '\'', '"', '$']) {
                    return Err(format!("quoted value in {line:?}"));
                }
                stack.env.push((k.to_string(), v.to_string()));
            } else if let Some(rest) = line.strip_prefix("unset ") {
                stack.unset = rest.split_whitespace().map(str::to_string).collect();
            }
        }
        Ok(stack)
    }

    /// Points `cmd` at this stack (and at nothing else).
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        for k in &self.unset {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The stack's directory (its pid files are in `pids/`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Runs `start.sh` again on this stack's directory (it repairs a broken stack).
    pub fn restart(&self) {
        let ok = Command::new(script("start.sh"))
            .env("JHACK_AUDIO_DIR", &self.dir)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "restarting the private audio stack failed");
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        let _ = Command::new(script("stop.sh"))
            .env("JHACK_AUDIO_DIR", &self.dir)
            .output();
    }
}

//! The local testbed `tsbench compare` measures: `tsod-testbed up` as a
//! child process that is stopped (SIGINT, then waited for; it removes its
//! own files) on every way out, and the Ctrl-C / SIGTERM flag that ends a
//! comparison early.
//!
//! The child stays in tsbench's process group, so a Ctrl-C at the terminal
//! reaches it too; `up --for` bounds its life should tsbench itself die
//! without stopping it.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

/// How long a stopping testbed may take before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// Lines of the testbed's output shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// Writes one progress line to stderr (a closed stderr is ignored).
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Set once Ctrl-C (SIGINT) or SIGTERM arrives; from then on neither ends
/// tsbench by itself, so that the testbed is always stopped first.
pub(crate) fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    let (mut interrupt, mut terminate) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
        })
        .context("cannot watch for Ctrl-C (SIGINT) and SIGTERM")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        runtime.block_on(async {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                if !flag.swap(true, Ordering::SeqCst) {
                    note("interrupted: stopping the testbed after the current step");
                }
            }
        });
    });
    Ok(stop)
}

/// A running `tsod-testbed up` and the directory it works in; stopped and
/// removed when dropped.
#[derive(Debug)]
pub(crate) struct Testbed {
    child: Option<Child>,
    work: PathBuf,
    log: PathBuf,
}

impl Testbed {
    /// Starts `testbed up --topology TOPOLOGY --for SECONDS --work WORK
    /// --tsod TSOD` in a new directory under the system's temporary one,
    /// its output going to a log file there.
    pub(crate) fn start(testbed: &Path, tsod: &Path, topology: &str, run_for: Duration) -> anyhow::Result<Self> {
        let work = std::env::temp_dir().join(format!("tsbench-compare-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
        let log = work.join("testbed.log");
        // From here on, dropping `started` removes the directory.
        let mut started = Self { child: None, work, log };
        let output = File::create(&started.log).with_context(|| format!("cannot create {}", started.log.display()))?;
        let errors = output.try_clone().context("cannot share the testbed's log file")?;
        let child = Command::new(testbed)
            .arg("up")
            .args(["--topology", topology, "--for", &run_for.as_secs().max(1).to_string(), "--work"])
            .arg(&started.work)
            .arg("--tsod")
            .arg(tsod)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .with_context(|| format!("cannot start {}", testbed.display()))?;
        started.child = Some(child);
        Ok(started)
    }

    /// Where its scratch directory goes (`--work`).
    pub(crate) fn work(&self) -> &Path {
        &self.work
    }

    /// Its process id (0 once stopped).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// An error if it has exited, with the end of its output.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait().context("cannot check on the testbed")?,
            None => anyhow::bail!("the testbed was stopped"),
        };
        match exited {
            None => Ok(()),
            Some(status) => anyhow::bail!("the testbed exited ({status}); its last output:\n{}", self.log_tail()),
        }
    }

    /// The last lines it wrote.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Stops it: SIGINT, then waits (it removes its scratch directory);
    /// killed if it has not ended within [`STOP_LIMIT`]. Idempotent.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(None)) {
            note("stopping the testbed");
            let interrupted = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            let deadline = Instant::now() + if interrupted { STOP_LIMIT } else { Duration::ZERO };
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                note("the testbed did not stop in time: killing it");
                let _ = child.kill();
            }
        }
        let _ = child.wait();
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

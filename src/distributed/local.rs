//! `--local-agents N`: N agent processes of this same binary on this machine, on
//! loopback ports they choose, with a fresh random token. They are killed when the run
//! ends (or when this value is dropped).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// On Linux, the agent gets SIGTERM when this process dies, even by `kill -9`: local
/// agents never outlive their coordinator.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe, as a pre_exec closure requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}

/// Copies an agent's messages to this process's stderr a whole line at a time, under
/// the lock `eprintln!` takes: lines of the agents and of the run never interleave
/// (each process writing its own stderr wrote a line in several pieces, and a terminal
/// showed them mixed).
fn relay_lines(from: std::process::ChildStderr) {
    std::thread::spawn(move || {
        use std::io::Write;
        for line in std::io::BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    });
}

/// Agent processes started for one run.
pub struct LocalAgents {
    children: Vec<Child>,
    /// Their `127.0.0.1:PORT` addresses, in order.
    pub addrs: Vec<String>,
    /// The token they were given.
    pub token: String,
}

impl LocalAgents {
    /// Starts `count` agents with `workers` threads each and waits until each listens.
    pub fn spawn(count: usize, workers: usize) -> Result<LocalAgents, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program to start agents: {e}"))?;
        let token = super::wire::nonce();
        let mut agents = LocalAgents { children: Vec::new(), addrs: Vec::new(), token: token.clone() };
        for i in 0..count {
            let mut cmd = Command::new(&exe);
            cmd.args(["agent", "--listen", "127.0.0.1:0", "--once", "--workers", &workers.to_string()])
                .env("VOLLEY_TOKEN", &token)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            die_with_parent(&mut cmd);
            let mut child = cmd.spawn().map_err(|e| format!("cannot start local agent {}: {e}", i + 1))?;
            let stdout = child.stdout.take();
            if let Some(err) = child.stderr.take() {
                relay_lines(err);
            }
            agents.children.push(child);
            let mut line = String::new();
            if let Some(out) = stdout {
                let mut reader = std::io::BufReader::new(out);
                let _ = reader.read_line(&mut line);
                // Keep the pipe drained (the agent prints nothing else on stdout).
                std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
            }
            match line.trim().strip_prefix("volley agent: listening on ") {
                Some(addr) => agents.addrs.push(addr.to_string()),
                None => return Err(format!("local agent {} did not start (it printed {:?})", i + 1, line.trim())),
            }
        }
        Ok(agents)
    }

    /// Kills agent `i` (for tests of a lost agent).
    pub fn kill(&mut self, i: usize) {
        if let Some(c) = self.children.get_mut(i) {
            let _ = c.kill();
        }
    }

    /// Waits a little for the agents to leave on their own, then kills the rest.
    pub fn stop(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for c in &mut self.children {
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for LocalAgents {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! `tracer watch` in a real terminal (tmux): the tree shows a process spawned under its parent,
//! then marks it exited. Needs root (the probes) and tmux.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Held, TRACER, kernel_test, pid};

const TIMEOUT: Duration = Duration::from_secs(60);

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(command: &[&str]) -> Tmux {
        let session = format!("tracer-test-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-x", "200", "-y", "50", "-s", &session])
            .args(command)
            .status()
            .expect("run tmux (Debian package tmux)");
        assert!(status.success());
        Tmux { session }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `wanted` holds, for at most [`TIMEOUT`].
    fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {TIMEOUT:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, keys])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

/// The tree line of `pid` (the first column of the process pane).
fn row(screen: &str, pid: u32) -> Option<(usize, &str)> {
    screen.lines().enumerate().find(|(_, line)| {
        line.strip_prefix('│')
            .is_some_and(|rest| rest.starts_with(&format!("{pid} ")))
    })
}

#[test]
fn watch_shows_a_spawned_process_under_its_parent_then_marks_it_exited() {
    let _kernel = kernel_test();
    let me = std::process::id();
    let focus = me.to_string();
    let tmux = Tmux::start(&[TRACER, "watch", "--pid", &focus]);
    tmux.wait_for("TUI with the test process", |s| {
        s.contains("tracer watch") && row(s, me).is_some()
    });

    let held = Held::start(&["hold"]);
    let (parent, child, grandchild) = (
        pid(&held.report, "parent"),
        pid(&held.report, "child"),
        pid(&held.report, "grandchild"),
    );
    let screen = tmux.wait_for("the held processes", |s| {
        row(s, grandchild).is_some() && row(s, child).is_some() && row(s, parent).is_some()
    });
    let (p, _) = row(&screen, parent).unwrap();
    let (c, child_line) = row(&screen, child).unwrap();
    let (g, grandchild_line) = row(&screen, grandchild).unwrap();
    assert!(
        p < c && c < g,
        "parent, child, grandchild in order:\n{screen}"
    );
    let indent = |line: &str| line.find("└─").unwrap_or_else(|| panic!("{line}"));
    assert!(
        indent(grandchild_line) > indent(child_line),
        "the grandchild sits under the child:\n{screen}"
    );
    assert!(grandchild_line.contains("running"), "{grandchild_line}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(grandchild as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let screen = tmux.wait_for("the grandchild marked exited", |s| {
        row(s, grandchild).is_some_and(|(_, line)| line.contains("SIGKILL"))
    });
    let (_, line) = row(&screen, grandchild).unwrap();
    assert!(line.contains(".XK"), "exited and killed flags: {line}");

    tmux.keys("q");
    tmux.wait_for("the TUI to quit", |s| {
        s.contains("tracer watch:") || !s.contains("PID")
    });
    held.release();
}

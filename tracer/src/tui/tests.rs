//! Render tests on ratatui's test backend: the tree, its styles, the panes, and what the keys
//! do to the view.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use super::draw::Screen;
use super::feed::Feed;
use super::view::{Action, Mode, View};
use super::{ViewOptions, render};
use tracer_core::analysis::Analyzer;
use tracer_core::event::Event;
use tracer_core::fixtures::{self, key};
use tracer_core::ingest::Pipeline;
use tracer_core::model::Model;
use tracer_core::roles::Rules;

const TICK: u64 = 10_000_000;
const S: u64 = 1_000_000_000;

fn titled(ts: u64, pid: u32, ppid: u32, title: &str) -> Event {
    let Event::Snapshot(mut snapshot) =
        fixtures::snapshot(ts, key(pid, pid as u64 * TICK), ppid, title)
    else {
        unreachable!()
    };
    snapshot.cmdline = vec![title.to_owned()];
    Event::Snapshot(snapshot)
}

/// init; sshd → bash; a Celery main process whose pool worker forks a child and is then
/// killed: the child is a daemonic orphan under init, the worker an exited tombstone.
fn host() -> Pipeline<Feed> {
    let mut pipeline = Pipeline::new(
        Model::new(TICK),
        Analyzer::new(Rules::builtin()),
        Feed::default(),
    );
    let main = key(100, 100 * TICK);
    let worker = key(101, 2 * S);
    let child = key(102, 3 * S);
    for event in [
        titled(S, 1, 0, "/sbin/init"),
        titled(S, 10, 1, "sshd"),
        titled(S, 11, 10, "bash\x1b]0;pwned\x07"),
        titled(
            S,
            100,
            1,
            "[celeryd: w1@host:MainProcess] -active- (-A tasks worker)",
        ),
        fixtures::fork(2 * S, worker, main, "celery"),
        fixtures::rename(2 * S + 1, worker, "[celeryd: w1@host:ForkPoolWorker-1]"),
        fixtures::fork(3 * S, child, worker, "celery"),
        fixtures::signal(4 * S, worker, main, 9),
        fixtures::exit(4 * S + 1, worker, 100, (None, Some(9)), 1),
    ] {
        pipeline.apply(&event).unwrap();
    }
    pipeline
}

fn frame(pipeline: &Pipeline<Feed>, view: &mut View, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let screen = Screen {
        name: "tracer watch",
        status: "5 processes".into(),
        model: &pipeline.model,
        feed: &pipeline.sink,
        now: 5 * S,
        started: S,
        timeline: None,
    };
    render(&mut terminal, view, &screen).unwrap();
    terminal.backend().buffer().clone()
}

fn lines(buffer: &Buffer) -> Vec<String> {
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// The line holding `needle`, and the cell where it starts.
fn find(buffer: &Buffer, needle: &str) -> Option<(usize, u16, u16)> {
    lines(buffer).iter().enumerate().find_map(|(y, line)| {
        let byte = line.find(needle)?;
        let x = line[..byte].chars().count();
        Some((y, x as u16, y as u16))
    })
}

/// The tree line of `pid`, and where `needle` starts on it.
fn on_row(buffer: &Buffer, pid: u32, needle: &str) -> Option<(usize, u16, u16)> {
    lines(buffer).iter().enumerate().find_map(|(y, line)| {
        let rest = line.strip_prefix('│')?;
        if !rest.starts_with(&format!("{pid} ")) {
            return None;
        }
        let byte = line.find(needle)?;
        Some((y, line[..byte].chars().count() as u16, y as u16))
    })
}

fn press(view: &mut View, code: KeyCode) -> Action {
    view.key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[test]
fn the_tree_shows_hierarchy_orphans_and_tombstones_with_columns() {
    let host = host();
    let mut view = View::default();
    let buffer = frame(&host, &mut view, 160, 30);
    let text = lines(&buffer).join("\n");
    assert!(text.contains("PID"), "{text}");
    for header in ["ROLE", "TITLE", "AGE", "STATE", "FLAG"] {
        assert!(text.contains(header), "{header} in\n{text}");
    }
    let (init, ..) = find(&buffer, "▾ /sbin/init").expect("init");
    let (main, ..) = find(&buffer, "├─ ▾ [celeryd: w1@host:MainProcess]").expect("main");
    let (worker, ..) = on_row(&buffer, 101, "│  └─ [celeryd").expect(&text);
    let (orphan, ..) = on_row(&buffer, 102, "└─ [celeryd: w1@host:ForkPoolWorker-1]").expect(&text);
    assert!(init < main && main < worker, "{text}");
    assert!(
        orphan > worker,
        "the orphan sits under init, after the main process"
    );
    let worker_line = &lines(&buffer)[worker];
    assert!(worker_line.contains("SIGKILL"), "{worker_line}");
    assert!(worker_line.contains("D.XK"), "{worker_line}");
    let orphan_line = &lines(&buffer)[orphan];
    assert!(orphan_line.contains("orphaned") && orphan_line.contains("DO.."));
    assert!(
        text.contains("bash\\x1b]0;pwned\\x07"),
        "escape sequences shown, not sent: {text}"
    );
    assert!(!text.contains('\x1b'));
}

#[test]
fn daemonic_orphaned_and_exited_rows_have_distinct_styles() {
    let host = host();
    let mut view = View::default();
    let buffer = frame(&host, &mut view, 160, 30);
    let style_at = |pid: u32, needle: &str| {
        let (_, x, y) = on_row(&buffer, pid, needle).unwrap_or_else(|| panic!("{needle}"));
        buffer[(x, y)].style()
    };
    let exited = style_at(101, "[celeryd");
    assert_eq!(exited.fg, Some(Color::DarkGray));
    assert!(exited.add_modifier.contains(Modifier::CROSSED_OUT));
    let orphan = style_at(102, "[celeryd");
    assert_eq!(orphan.fg, Some(Color::Yellow));
    assert!(orphan.add_modifier.contains(Modifier::BOLD));
    let plain = style_at(10, "sshd");
    assert_ne!(plain.fg, Some(Color::Yellow));
    assert_ne!(plain.fg, Some(Color::Magenta));
    // The legend shows each style by name.
    let (_, x, y) = find(&buffer, "daemonic orphan exited").expect("legend");
    assert_eq!(buffer[(x, y)].style().fg, Some(Color::Magenta));
}

#[test]
fn panes_show_details_lineage_findings_and_status() {
    let host = host();
    let mut view = View::default();
    frame(&host, &mut view, 160, 40);
    // Select the orphan: `o` jumps to the next one.
    press(&mut view, KeyCode::Char('o'));
    assert_eq!(view.selected.map(|k| k.pid), Some(102));
    let buffer = frame(&host, &mut view, 160, 40);
    let text = lines(&buffer).join("\n");
    assert!(text.contains("tracer watch 5 processes"), "{text}");
    assert!(text.contains(" selected "), "{text}");
    assert!(text.contains("orphaned"), "{text}");
    assert!(text.contains("lineage (who created whom)"), "{text}");
    assert!(
        text.contains("← 101 [celeryd: w1@host:ForkPoolWorker-1] (exited)"),
        "{text}"
    );
    assert!(
        text.contains("← 100 [celeryd: w1@host:MainProcess]"),
        "{text}"
    );
    assert!(
        text.contains("daemonic: forked without exec from 101"),
        "{text}"
    );
    assert!(text.contains(" findings ("), "{text}");
    assert!(text.contains("orphaned"), "{text}");
    assert!(text.contains("killed"), "{text}");
}

#[test]
fn collapse_focus_filter_and_search_change_the_rows() {
    let host = host();
    let mut view = View::default();
    frame(&host, &mut view, 160, 30);
    let all = view.rows.len();
    assert_eq!(all, 6, "{:#?}", view.rows);

    // Collapse sshd: bash is hidden and sshd says how many children it folds.
    while view.selected_row().unwrap().key.pid != 10 {
        press(&mut view, KeyCode::Down);
    }
    press(&mut view, KeyCode::Left);
    let buffer = frame(&host, &mut view, 160, 30);
    assert_eq!(view.rows.len(), all - 1);
    assert!(
        find(&buffer, "▸ sshd  [+1]").is_some(),
        "{:?}",
        lines(&buffer)
    );
    press(&mut view, KeyCode::Right);
    frame(&host, &mut view, 160, 30);
    assert_eq!(view.rows.len(), all);

    // Focus the Celery main process: its subtree only.
    press(&mut view, KeyCode::Down);
    press(&mut view, KeyCode::Down);
    assert_eq!(view.selected_row().unwrap().key.pid, 100);
    press(&mut view, KeyCode::Char('f'));
    frame(&host, &mut view, 160, 30);
    let pids: Vec<u32> = view.rows.iter().map(|r| r.key.pid).collect();
    assert_eq!(pids, [100, 101]);
    press(&mut view, KeyCode::Char('F'));

    // Filter by role: the main process and its ancestors stay.
    let mut by_role = ViewOptions {
        role: Some("celery.main".into()),
        ..ViewOptions::default()
    }
    .view();
    frame(&host, &mut by_role, 160, 30);
    let pids: Vec<u32> = by_role.rows.iter().map(|r| r.key.pid).collect();
    assert_eq!(pids, [1, 100]);

    // Live orphans only (`O`, or `--orphans`): the child under init that adopted it.
    press(&mut view, KeyCode::Char('O'));
    let buffer = frame(&host, &mut view, 160, 30);
    let pids: Vec<u32> = view.rows.iter().map(|r| r.key.pid).collect();
    assert_eq!(pids, [1, 102]);
    assert!(find(&buffer, "live orphans only").is_some());
    press(&mut view, KeyCode::Char('O'));
    frame(&host, &mut view, 160, 30);
    assert_eq!(view.rows.len(), all);
    let mut orphans = ViewOptions {
        orphans: true,
        ..ViewOptions::default()
    }
    .view();
    frame(&host, &mut orphans, 160, 30);
    assert_eq!(orphans.rows.len(), 2);

    // Search: `/`, typing, Enter selects the first match; matches are underlined.
    frame(&host, &mut view, 160, 30);
    press(&mut view, KeyCode::Char('/'));
    assert_eq!(view.mode, Mode::Search);
    for c in "bash".chars() {
        press(&mut view, KeyCode::Char(c));
    }
    press(&mut view, KeyCode::Enter);
    assert_eq!(view.selected_row().unwrap().key.pid, 11);
    let buffer = frame(&host, &mut view, 160, 30);
    let (_, x, y) = find(&buffer, "bash\\x1b").unwrap();
    assert!(
        buffer[(x, y)]
            .style()
            .add_modifier
            .contains(Modifier::UNDERLINED)
    );
}

#[test]
fn pause_freezes_the_rows_and_keys_do_what_help_says() {
    let mut host = host();
    let mut view = View::default();
    frame(&host, &mut view, 160, 30);
    press(&mut view, KeyCode::Char('p'));
    assert!(view.paused);
    let before = view.rows.clone();
    host.apply(&fixtures::fork(
        5 * S,
        key(103, 5 * S),
        key(10, 10 * TICK),
        "sshd",
    ))
    .unwrap();
    let buffer = frame(&host, &mut view, 160, 30);
    assert_eq!(view.rows, before, "paused: same rows");
    assert!(lines(&buffer)[0].contains("PAUSED"));
    press(&mut view, KeyCode::Char(' '));
    frame(&host, &mut view, 160, 30);
    assert_eq!(view.rows.len(), before.len() + 1);

    press(&mut view, KeyCode::Char('?'));
    let buffer = frame(&host, &mut view, 160, 30);
    assert!(find(&buffer, "focus the selected subtree").is_some());
    press(&mut view, KeyCode::Char('x'));
    assert_eq!(view.mode, Mode::Normal);
    assert_eq!(press(&mut view, KeyCode::Char(']')), Action::Step(1));
    assert_eq!(press(&mut view, KeyCode::Char('q')), Action::Quit);
    assert_eq!(
        view.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
}

#[test]
fn a_narrow_terminal_keeps_the_tree_and_findings() {
    let host = host();
    let mut view = View::default();
    let buffer = frame(&host, &mut view, 80, 24);
    let text = lines(&buffer).join("\n");
    assert!(
        text.contains("/sbin/init") && text.contains(" findings ("),
        "{text}"
    );
}

/// A forkserver child whose interpreter was read: the details say what the interpreter said
/// and who asked for the child, and its lineage says so of it too.
#[test]
fn the_details_show_the_interpreters_word_and_who_asked_for_a_forkserver_child() {
    let mut pipeline = Pipeline::new(
        Model::new(TICK),
        Analyzer::new(Rules::builtin()),
        Feed::default(),
    );
    pipeline.analyzer.set_inspecting(true);
    let (main, server, child, grandchild) = (
        key(50, 50 * TICK),
        key(61, 2 * S),
        key(62, 3 * S),
        key(63, 4 * S),
    );
    let main_process = "multiprocessing.process._MainProcess";
    let class = "multiprocessing.context.ForkServerProcess";
    for event in [
        titled(S, 1, 0, "/sbin/init"),
        titled(S, 50, 1, "python3 job.py"),
        fixtures::fork(2 * S, server, main, "python3"),
        fixtures::exec(
            2 * S + 1,
            server,
            50,
            "/usr/bin/python3",
            &[
                "python3",
                "-c",
                "from multiprocessing.forkserver import main; main(8, 9)",
            ],
        ),
        fixtures::interpreter(2 * S + 2, main, false, "MainProcess", main_process, None),
        fixtures::fork(3 * S, child, server, "python3"),
        {
            // Read running its program after one exec.
            let Event::Interpreter(mut read) =
                fixtures::interpreter(3 * S + 1, server, false, "MainProcess", main_process, None)
            else {
                unreachable!()
            };
            read.execs = 1;
            Event::Interpreter(read)
        },
        fixtures::fork(4 * S, grandchild, child, "python3"),
        fixtures::interpreter(4 * S + 1, child, true, "Process-1", class, Some(50)),
    ] {
        pipeline.apply(&event).unwrap();
    }
    let mut view = View::default();
    frame(&pipeline, &mut view, 240, 40);
    view.selected = Some(child);
    let text = lines(&frame(&pipeline, &mut view, 240, 40)).join("\n");
    assert!(text.contains("at the request of 50)"), "{text}");
    assert!(text.contains("python   Python 3.11: `Process-1`"), "{text}");
    assert!(text.contains("read from the interpreter"), "{text}");
    assert!(!text.contains("conflict"), "{text}");
    view.selected = Some(grandchild);
    let text = lines(&frame(&pipeline, &mut view, 240, 40)).join("\n");
    assert!(text.contains("main(8, 9) (at the request"), "{text}");
}

//! The TUI's view of the model: which rows the tree shows (collapsed, focused, filtered),
//! what is selected, and what each key does. Pure: no terminal here.

use std::collections::{HashMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use tracer_core::event::ProcessKey;
use tracer_core::model::{Model, ProcessIndex};
use tracer_core::sanitize::sanitize;

use super::feed::{Feed, Tombstone};

/// One line of the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: ProcessKey,
    /// Tree branches drawn before the title.
    pub prefix: String,
    pub role: String,
    /// Sanitized.
    pub title: String,
    /// How long it has lived (or lived, when exited).
    pub age_ns: u64,
    pub state: String,
    pub daemonic: bool,
    pub orphan: bool,
    pub exited: bool,
    pub killed: bool,
    /// Children it has in the view, shown or collapsed.
    pub children: usize,
    pub collapsed: bool,
    pub matched: bool,
}

impl Row {
    /// `D` daemonic, `O` orphan, `X` exited, `K` killed by a signal.
    pub fn flags(&self) -> String {
        [
            (self.daemonic, 'D'),
            (self.orphan, 'O'),
            (self.exited, 'X'),
            (self.killed, 'K'),
        ]
        .into_iter()
        .map(|(set, c)| if set { c } else { '.' })
        .collect()
    }
}

/// What the TUI is doing with its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a search.
    Search,
    Help,
}

/// A request from a key the view cannot serve itself (replay's time cursor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    /// Move the replay time by this many steps (negative: back).
    Step(i32),
    /// Multiply the replay step by 10, or divide it.
    StepScale(bool),
    /// The previous or next finding's time.
    Finding(bool),
    /// The start or end of the trace.
    Edge(bool),
}

#[derive(Clone, Debug)]
pub struct View {
    pub collapsed: HashSet<ProcessKey>,
    pub selected: Option<ProcessKey>,
    pub cursor: usize,
    /// First row on screen.
    pub offset: usize,
    pub mode: Mode,
    pub search: String,
    pub role_filter: Option<String>,
    /// Show only the live orphans (with their ancestors, where they now live).
    pub orphans_only: bool,
    /// Show only this pid's subtree.
    pub focus: Option<u32>,
    /// Keep showing the rows as they were; the model goes on.
    pub paused: bool,
    pub kernel_threads: bool,
    pub rows: Vec<Row>,
    /// Rows the tree pane had room for at the last draw: what a page is.
    pub page: usize,
    /// Roles seen in the model at the last refresh, for `r` to cycle through.
    pub roles: Vec<String>,
}

impl Default for View {
    fn default() -> Self {
        View {
            collapsed: HashSet::new(),
            selected: None,
            cursor: 0,
            offset: 0,
            mode: Mode::Normal,
            search: String::new(),
            role_filter: None,
            orphans_only: false,
            focus: None,
            paused: false,
            kernel_threads: false,
            rows: Vec::new(),
            page: 20,
            roles: Vec::new(),
        }
    }
}

enum Item<'a> {
    Live(ProcessIndex),
    Exited(&'a Tombstone),
}

struct Node<'a> {
    item: Item<'a>,
    children: Vec<usize>,
    keep: bool,
}

fn role_matches(filter: &str, id: Option<&str>, label: Option<&str>) -> bool {
    id == Some(filter) || label.is_some_and(|l| l.eq_ignore_ascii_case(filter))
}

impl View {
    /// Rebuilds the rows from the model unless paused, keeping the selection on the same
    /// process when it is still shown.
    pub fn refresh(&mut self, model: &Model, feed: &Feed, now: u64) {
        if self.paused {
            return;
        }
        self.rows = self.build(model, feed, now);
        let mut roles: Vec<String> = model
            .processes()
            .filter_map(|(_, p)| p.class.role.as_ref().map(|r| r.id.clone()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        roles.sort();
        self.roles = roles;
        self.reselect();
    }

    fn reselect(&mut self) {
        if let Some(selected) = self.selected
            && let Some(i) = self.rows.iter().position(|r| r.key == selected)
        {
            self.cursor = i;
        }
        self.cursor = self.cursor.min(self.rows.len().saturating_sub(1));
        self.selected = self.rows.get(self.cursor).map(|r| r.key);
    }

    fn build(&self, model: &Model, feed: &Feed, now: u64) -> Vec<Row> {
        let visible = |i: ProcessIndex| self.kernel_threads || !model.get(i).kernel_thread;
        let mut exited_under: HashMap<u32, Vec<&Tombstone>> = HashMap::new();
        for tomb in feed.exited(now) {
            exited_under.entry(tomb.ppid).or_default().push(tomb);
        }
        let mut nodes: Vec<Node> = Vec::new();
        let mut roots: Vec<usize> = Vec::new();
        let top: Vec<ProcessIndex> = match self.focus {
            Some(pid) => model.live_index(pid).into_iter().collect(),
            None => model.roots().into_iter().filter(|&i| visible(i)).collect(),
        };
        // Depth-first with an explicit stack: process trees can be deeper than the call stack.
        let mut stack: Vec<usize> = Vec::new();
        for index in top {
            nodes.push(Node {
                item: Item::Live(index),
                children: Vec::new(),
                keep: true,
            });
            roots.push(nodes.len() - 1);
            stack.push(nodes.len() - 1);
        }
        let mut placed: HashSet<ProcessKey> = HashSet::new();
        while let Some(node) = stack.pop() {
            let Item::Live(index) = nodes[node].item else {
                continue;
            };
            let pid = model.get(index).key.pid;
            for child in model.children_by_pid(pid, visible) {
                nodes.push(Node {
                    item: Item::Live(child),
                    children: Vec::new(),
                    keep: true,
                });
                let id = nodes.len() - 1;
                nodes[node].children.push(id);
                stack.push(id);
            }
            for tomb in exited_under.get(&pid).into_iter().flatten() {
                placed.insert(tomb.key);
                nodes.push(Node {
                    item: Item::Exited(tomb),
                    children: Vec::new(),
                    keep: true,
                });
                let id = nodes.len() - 1;
                nodes[node].children.push(id);
            }
        }
        if self.focus.is_none() {
            // Exited processes whose parent is not in the tree either.
            for tomb in feed.exited(now).filter(|t| !placed.contains(&t.key)) {
                nodes.push(Node {
                    item: Item::Exited(tomb),
                    children: Vec::new(),
                    keep: true,
                });
                roots.push(nodes.len() - 1);
            }
        }
        if self.role_filter.is_some() || self.orphans_only {
            // A match keeps its ancestors, so that it is shown where it lives.
            fn mark(nodes: &mut [Node], id: usize, wanted: &dyn Fn(&Node) -> bool) -> bool {
                let mut stack = vec![(id, false)];
                let mut result = HashMap::new();
                while let Some((id, expanded)) = stack.pop() {
                    if expanded {
                        let any_child = nodes[id].children.iter().any(|c| result[c]);
                        let keep = wanted(&nodes[id]) || any_child;
                        nodes[id].keep = keep;
                        result.insert(id, keep);
                    } else {
                        stack.push((id, true));
                        stack.extend(nodes[id].children.iter().map(|&c| (c, false)));
                    }
                }
                result[&id]
            }
            let filter = self.role_filter.as_deref();
            let wanted = |node: &Node| match &node.item {
                Item::Live(index) => {
                    let process = model.get(*index);
                    let role = process.class.role.as_ref();
                    filter.is_none_or(|filter| {
                        role_matches(
                            filter,
                            role.map(|r| r.id.as_str()),
                            role.map(|r| r.label.as_str()),
                        )
                    }) && (!self.orphans_only || process.orphaned.is_some())
                }
                Item::Exited(tomb) => {
                    !self.orphans_only
                        && filter.is_none_or(|f| role_matches(f, None, tomb.role.as_deref()))
                }
            };
            for &root in &roots {
                mark(&mut nodes, root, &wanted);
            }
        }
        let query = self.search.to_lowercase();
        let mut rows = Vec::new();
        let kept_roots: Vec<usize> = roots.into_iter().filter(|&r| nodes[r].keep).collect();
        let mut stack: Vec<(usize, String, bool, bool)> = kept_roots
            .into_iter()
            .rev()
            .map(|r| (r, String::new(), true, true))
            .collect();
        while let Some((id, prefix, is_last, is_root)) = stack.pop() {
            let branch = match (is_root, is_last) {
                (true, _) => "",
                (false, true) => "└─ ",
                (false, false) => "├─ ",
            };
            let kids: Vec<usize> = nodes[id]
                .children
                .iter()
                .copied()
                .filter(|&c| nodes[c].keep)
                .collect();
            let mut row = self.row(model, &nodes[id].item, now);
            row.prefix = format!("{prefix}{branch}");
            row.children = kids.len();
            row.collapsed = !kids.is_empty() && self.collapsed.contains(&row.key);
            row.matched = !query.is_empty()
                && (row.title.to_lowercase().contains(&query)
                    || row.key.pid.to_string() == query
                    || row.role.to_lowercase().contains(&query));
            let collapsed = row.collapsed;
            rows.push(row);
            if collapsed {
                continue;
            }
            let child_prefix = match (is_root, is_last) {
                (true, _) => prefix,
                (false, true) => format!("{prefix}   "),
                (false, false) => format!("{prefix}│  "),
            };
            let count = kids.len();
            for (i, kid) in kids.into_iter().enumerate().rev() {
                stack.push((kid, child_prefix.clone(), i + 1 == count, false));
            }
        }
        rows
    }

    fn row(&self, model: &Model, item: &Item, now: u64) -> Row {
        match item {
            Item::Live(index) => {
                let process = model.get(*index);
                let orphan = process.orphaned.is_some();
                Row {
                    key: process.key,
                    prefix: String::new(),
                    role: process
                        .class
                        .role
                        .as_ref()
                        .map(|r| sanitize(&r.label).into_owned())
                        .unwrap_or_default(),
                    title: sanitize(&process.title()).into_owned(),
                    age_ns: now.saturating_sub(process.key.start_time),
                    state: if orphan { "orphaned" } else { "running" }.to_owned(),
                    daemonic: process.class.is_daemonic(),
                    orphan,
                    exited: false,
                    killed: false,
                    children: 0,
                    collapsed: false,
                    matched: false,
                }
            }
            Item::Exited(tomb) => Row {
                key: tomb.key,
                prefix: String::new(),
                role: tomb
                    .role
                    .as_deref()
                    .map(|r| sanitize(r).into_owned())
                    .unwrap_or_default(),
                title: sanitize(&tomb.title).into_owned(),
                age_ns: tomb.exit_ts.saturating_sub(tomb.key.start_time),
                state: tomb
                    .how
                    .strip_prefix("killed by ")
                    .map(str::to_owned)
                    .unwrap_or_else(|| tomb.how.replace("exit code", "exit")),
                daemonic: tomb.daemonic,
                orphan: tomb.orphaned,
                exited: true,
                killed: tomb.killed,
                children: 0,
                collapsed: false,
                matched: false,
            },
        }
    }

    pub fn selected_row(&self) -> Option<&Row> {
        self.rows.get(self.cursor)
    }

    fn select(&mut self, index: usize) {
        if self.rows.is_empty() {
            self.cursor = 0;
            self.selected = None;
            return;
        }
        self.cursor = index.min(self.rows.len() - 1);
        self.selected = Some(self.rows[self.cursor].key);
    }

    fn jump(&mut self, forward: bool, wanted: impl Fn(&Row) -> bool) {
        let n = self.rows.len();
        if n == 0 {
            return;
        }
        let found = (1..=n)
            .map(|step| {
                if forward {
                    (self.cursor + step) % n
                } else {
                    (self.cursor + n - step % n) % n
                }
            })
            .find(|&i| wanted(&self.rows[i]));
        if let Some(i) = found {
            self.select(i);
        }
    }

    /// Handles a key; returns what the caller must do. Rows are rebuilt by the caller's next
    /// [`View::refresh`].
    pub fn key(&mut self, key: KeyEvent) -> Action {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match self.mode {
            Mode::Help => {
                if matches!(key.code, KeyCode::Char('q')) {
                    return Action::Quit;
                }
                self.mode = Mode::Normal;
                Action::None
            }
            Mode::Search => {
                match key.code {
                    KeyCode::Enter => {
                        self.mode = Mode::Normal;
                        self.next_match(true);
                    }
                    KeyCode::Esc => {
                        self.mode = Mode::Normal;
                        self.search.clear();
                        self.mark_matches();
                    }
                    KeyCode::Backspace => {
                        self.search.pop();
                        self.mark_matches();
                    }
                    KeyCode::Char(c) if !c.is_control() => {
                        self.search.push(c);
                        self.mark_matches();
                    }
                    _ => {}
                }
                Action::None
            }
            Mode::Normal => self.normal_key(key.code),
        }
    }

    fn normal_key(&mut self, code: KeyCode) -> Action {
        let page = self.page.max(1);
        match code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Up | KeyCode::Char('k') => self.select(self.cursor.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.cursor + 1),
            KeyCode::PageUp => self.select(self.cursor.saturating_sub(page)),
            KeyCode::PageDown => self.select(self.cursor + page),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(usize::MAX),
            KeyCode::Left | KeyCode::Char('h') => self.collapse_or_parent(),
            KeyCode::Right | KeyCode::Char('l') => {
                if let Some(key) = self.selected {
                    self.collapsed.remove(&key);
                }
            }
            KeyCode::Char('c') => {
                if let Some(key) = self.selected
                    && !self.collapsed.remove(&key)
                {
                    self.collapsed.insert(key);
                }
            }
            KeyCode::Char('e') => self.collapsed.clear(),
            KeyCode::Char('/') => {
                self.mode = Mode::Search;
                self.search.clear();
                self.mark_matches();
            }
            KeyCode::Char('n') => self.next_match(true),
            KeyCode::Char('N') => self.next_match(false),
            KeyCode::Char('o') => self.jump(true, |r| r.orphan && !r.exited),
            KeyCode::Char('O') => self.orphans_only = !self.orphans_only,
            KeyCode::Char('r') => {
                self.role_filter = match &self.role_filter {
                    None => self.roles.first().cloned(),
                    Some(current) => self
                        .roles
                        .iter()
                        .position(|r| r == current)
                        .and_then(|i| self.roles.get(i + 1))
                        .cloned(),
                };
            }
            KeyCode::Char('R') => self.role_filter = None,
            KeyCode::Char('f') => {
                if let Some(row) = self.selected_row()
                    && !row.exited
                {
                    self.focus = Some(row.key.pid);
                }
            }
            KeyCode::Char('F') | KeyCode::Backspace => self.focus = None,
            KeyCode::Char('p') | KeyCode::Char(' ') => self.paused = !self.paused,
            KeyCode::Esc => {
                self.search.clear();
                self.mark_matches();
            }
            KeyCode::Char('[') => return Action::Step(-1),
            KeyCode::Char(']') => return Action::Step(1),
            KeyCode::Char('-') => return Action::StepScale(false),
            KeyCode::Char('+') | KeyCode::Char('=') => return Action::StepScale(true),
            KeyCode::Char('{') => return Action::Finding(false),
            KeyCode::Char('}') => return Action::Finding(true),
            KeyCode::Char('0') => return Action::Edge(false),
            KeyCode::Char('$') => return Action::Edge(true),
            _ => {}
        }
        Action::None
    }

    fn mark_matches(&mut self) {
        let query = self.search.to_lowercase();
        for row in &mut self.rows {
            row.matched = !query.is_empty()
                && (row.title.to_lowercase().contains(&query)
                    || row.key.pid.to_string() == query
                    || row.role.to_lowercase().contains(&query));
        }
    }

    fn next_match(&mut self, forward: bool) {
        self.mark_matches();
        self.jump(forward, |r| r.matched);
    }

    /// `←`: folds the selected subtree, or when there is nothing to fold, moves to the parent.
    fn collapse_or_parent(&mut self) {
        let Some(row) = self.selected_row() else {
            return;
        };
        if row.children > 0 && !row.collapsed {
            let key = row.key;
            self.collapsed.insert(key);
            return;
        }
        let depth = row.prefix.chars().count();
        if let Some(parent) = (0..self.cursor)
            .rev()
            .find(|&i| self.rows[i].prefix.chars().count() < depth)
        {
            self.select(parent);
        }
    }

    /// Keeps the cursor on screen in a pane of `height` rows.
    pub fn scroll(&mut self, height: usize) {
        self.page = height;
        if height == 0 {
            return;
        }
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + height {
            self.offset = self.cursor + 1 - height;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(height));
    }
}

//! Keys and mouse to actions: one keymap, htop, top and k9s conventions.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEventKind};

/// What a key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextGroupKey,
    PrevGroupKey,
    SortNext,
    SortPrev,
    /// Sort by visible column N (1-based); again reverses.
    SortBy(usize),
    Reverse,
    FilterStart,
    FilterChar(char),
    FilterBackspace,
    FilterDone,
    FilterClear,
    Pause,
    ToggleRates,
    ToggleTtfb,
    /// The latency panel (histogram and heatmap) under the table, or back to the sparkline.
    ToggleLatency,
    /// The slowest exchanges under the table, or back.
    ToggleSlowest,
    /// Select row N of the view (a click).
    Select(usize),
    Clear,
    Export,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Back,
    Help,
}

/// What keys mean depends on where the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    /// Typing a filter.
    Filter,
    Help,
    Drill,
}

/// The one keymap: htop, top and k9s conventions.
pub fn map_key(key: KeyEvent, mode: Mode) -> Option<Action> {
    use Action as A;
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(A::Quit);
    }
    if mode == Mode::Filter {
        return match key.code {
            KeyCode::Enter => Some(A::FilterDone),
            KeyCode::Esc => Some(A::FilterClear),
            KeyCode::Backspace => Some(A::FilterBackspace),
            KeyCode::Char(c) if !c.is_control() => Some(A::FilterChar(c)),
            _ => None,
        };
    }
    if mode == Mode::Help {
        return match key.code {
            KeyCode::Char('q') => Some(A::Quit),
            _ => Some(A::Help),
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => A::Quit,
        KeyCode::Char('g') => A::NextGroupKey,
        KeyCode::Char('G') => A::PrevGroupKey,
        KeyCode::Char('s' | '>') => A::SortNext,
        KeyCode::Char('S' | '<') => A::SortPrev,
        KeyCode::Char('r' | 'I') => A::Reverse,
        KeyCode::Char(c @ '1'..='9') => A::SortBy(c as usize - '0' as usize),
        KeyCode::Char('/') => A::FilterStart,
        KeyCode::Char(' ' | 'p') => A::Pause,
        KeyCode::Char('t') => A::ToggleRates,
        KeyCode::Char('T') => A::ToggleTtfb,
        KeyCode::Char('l') => A::ToggleLatency,
        KeyCode::Char('o') => A::ToggleSlowest,
        KeyCode::Char('c') => A::Clear,
        KeyCode::Char('e') => A::Export,
        KeyCode::Char('j') | KeyCode::Down => A::Down,
        KeyCode::Char('k') | KeyCode::Up => A::Up,
        KeyCode::PageDown => A::PageDown,
        KeyCode::PageUp => A::PageUp,
        KeyCode::Home => A::Home,
        KeyCode::End => A::End,
        KeyCode::Enter => A::Enter,
        KeyCode::Esc => A::Back,
        KeyCode::Char('?') => A::Help,
        _ => return None,
    })
}

/// Where a mouse event landed, as the screen's layout has it ([`crate::ui::render::hit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// The title of visible column N (1-based, as the digit keys).
    Column(usize),
    /// Row N of the view.
    Row(usize),
    Elsewhere,
}

/// The mouse: a click on a column title sorts by it (again: reverses), a click on a row selects
/// it, the wheel moves the selection. Only over the tables.
pub fn map_mouse(kind: MouseEventKind, hit: Hit, mode: Mode) -> Option<Action> {
    if !matches!(mode, Mode::Table | Mode::Drill) {
        return None;
    }
    match (kind, hit) {
        (MouseEventKind::ScrollDown, _) => Some(Action::Down),
        (MouseEventKind::ScrollUp, _) => Some(Action::Up),
        (MouseEventKind::Down(MouseButton::Left), Hit::Column(n)) => Some(Action::SortBy(n)),
        (MouseEventKind::Down(MouseButton::Left), Hit::Row(i)) => Some(Action::Select(i)),
        _ => None,
    }
}

//! Keys to actions: one keymap, htop, top and k9s conventions.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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

//! Everything a person reads on stdout: tables, coloured dots, JSON.
//!
//! Colour is used only when the stream is a terminal and `NO_COLOR` is not
//! set (to any value). JSON output never has colour.

use comfy_table::{presets, Table};
use serde::Serialize;
use std::fmt;
use std::io::IsTerminal;

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether stdout gets colour.
pub fn stdout_color() -> bool {
    !no_color() && std::io::stdout().is_terminal()
}

/// Whether stderr gets colour.
pub fn stderr_color() -> bool {
    !no_color() && std::io::stderr().is_terminal()
}

/// Whether stderr is a terminal (progress bars are drawn only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// `println!` for command output: a reader that went away
/// (`segsync logs | head`) is not an error, and the rest is dropped.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout for [`outln!`]; a closed pipe is ignored, any other
/// failure panics as `println!` would.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    use std::io::Write;
    match std::io::stdout().lock().write_fmt(args) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("failed printing to stdout: {e}")
        }
        _ => {}
    }
}

/// Writes `bytes` to stdout, ignoring a closed pipe like [`outln!`].
pub fn write_stdout_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The zone JSON output writes instants in: the organisation's, set once
/// by the command from the configuration (UTC until then).
static DISPLAY_ZONE: std::sync::OnceLock<chrono_tz::Tz> = std::sync::OnceLock::new();

/// Sets the zone of JSON instants (the first call wins).
pub fn set_display_zone(tz: chrono_tz::Tz) {
    let _ = DISPLAY_ZONE.set(tz);
}

/// Serialises an instant as RFC 3339 with the organisation's offset, so
/// that every time in one JSON document reads alike (`run-due`'s `slot`,
/// `next_slots`, and an execution's times).
pub fn local_time<S: serde::Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let tz = DISPLAY_ZONE.get().copied().unwrap_or(chrono_tz::UTC);
    s.serialize_str(&crate::schedule::rfc3339_in(tz, *t))
}

/// [`local_time`] for an optional instant (null when absent).
pub fn local_time_opt<S: serde::Serializer>(
    t: &Option<chrono::DateTime<chrono::Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => local_time(t, s),
        None => s.serialize_none(),
    }
}

/// Prints `value` as pretty JSON on stdout. A reader that went away
/// (`segsync logs --json | head`) is not an error.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A table with no borders and an upper-case header, as `list` and
/// `run-due` print. comfy-table's `custom_styling` measures cells without
/// their colour codes, so a coloured column lines up with its header.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

/// The table's text, without the padding comfy-table leaves at line ends.
pub fn render(t: &Table) -> String {
    t.to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Wraps `text` in an ANSI colour when `on`.
pub fn paint(text: &str, color: Color, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match color {
        Color::Green => "32",
        Color::Red => "31",
        Color::Yellow => "33",
        Color::Dim => "2",
        Color::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// The few colours segsync uses.
#[derive(Debug, Clone, Copy)]
pub enum Color {
    Green,
    Red,
    Yellow,
    Dim,
    Bold,
}

/// `error: a: b: c` style rendering of an error chain, without repeating a
/// message that a context already includes.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if parts.last().is_some_and(|p| p.contains(&s)) {
            continue;
        }
        parts.push(s);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each column starts on screen once colour codes are removed.
    fn plain(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('\x1b') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('m').unwrap();
            rest = &rest[start + end + 1..];
        }
        out + rest
    }

    #[test]
    fn coloured_cells_line_up_with_their_header() {
        let mut t = table(&["name", "status", "type"]);
        t.add_row(vec![
            "churn".to_string(),
            paint("active", Color::Green, true),
            "non-scd".to_string(),
        ]);
        t.add_row(vec![
            "hv".to_string(),
            paint("inprogress", Color::Yellow, true),
            "scd".to_string(),
        ]);
        let shown = plain(&render(&t));
        assert_eq!(
            shown,
            " NAME   STATUS      TYPE\n churn  active      non-scd\n hv     inprogress  scd"
        );
        // Without colour the layout is the same.
        let mut t = table(&["name", "status", "type"]);
        t.add_row(vec!["churn", "active", "non-scd"]);
        t.add_row(vec!["hv", "inprogress", "scd"]);
        assert_eq!(render(&t), shown);
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut t = table(&["a", "b"]);
        t.add_row(vec!["日本", "x"]);
        t.add_row(vec!["abcd", "y"]);
        assert_eq!(render(&t), " A     B\n 日本  x\n abcd  y");
    }
}

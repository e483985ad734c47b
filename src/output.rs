//! Everything a person reads on stdout: tables, coloured dots, JSON.
//!
//! Colour is used only when the stream is a terminal and `NO_COLOR` is not
//! set (to any value). JSON output never has colour.

use serde::Serialize;
use std::fmt;
use std::io::IsTerminal;
use unicode_width::UnicodeWidthStr;

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
/// `run-due` print.
pub fn table(header: &[&str]) -> Table {
    Table {
        header: header.iter().map(|h| h.to_uppercase()).collect(),
        rows: Vec::new(),
    }
}

/// A borderless table: each cell has a space on either side and is padded
/// to its column's widest text. Widths are measured on what the terminal
/// shows, ignoring the colour codes of [`paint`], so a coloured column lines
/// up with its header.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Appends a row; missing cells print empty.
    pub fn add_row(&mut self, row: Vec<String>) -> &mut Self {
        self.rows.push(row);
        self
    }
}

/// Width on screen: ANSI escape sequences take no room.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        width += rest[..start].width();
        let after = &rest[start..];
        // An SGR sequence ends with `m`; anything else is counted as text.
        match after.find('m') {
            Some(end) if after.starts_with("\x1b[") => rest = &after[end + 1..],
            _ => {
                width += after.width();
                rest = "";
            }
        }
    }
    width + rest.width()
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(visible_width(cell));
            }
        }
        let lines: Vec<String> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|row| {
                let mut line = String::new();
                for (i, w) in widths.iter().enumerate() {
                    let cell = row.get(i).map(String::as_str).unwrap_or("");
                    line.push(' ');
                    line.push_str(cell);
                    line.push_str(&" ".repeat(w - visible_width(cell) + 1));
                }
                line.trim_end().to_string()
            })
            .collect();
        write!(f, "{}", lines.join("\n"))
    }
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
            "churn".into(),
            paint("active", Color::Green, true),
            "non-scd".into(),
        ]);
        t.add_row(vec![
            "hv".into(),
            paint("inprogress", Color::Yellow, true),
            "scd".into(),
        ]);
        let shown = plain(&t.to_string());
        assert_eq!(
            shown,
            " NAME   STATUS      TYPE\n churn  active      non-scd\n hv     inprogress  scd"
        );
        // Without colour the layout is the same.
        let mut t = table(&["name", "status", "type"]);
        t.add_row(vec!["churn".into(), "active".into(), "non-scd".into()]);
        t.add_row(vec!["hv".into(), "inprogress".into(), "scd".into()]);
        assert_eq!(t.to_string(), shown);
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut t = table(&["a", "b"]);
        t.add_row(vec!["日本".into(), "x".into()]);
        t.add_row(vec!["abcd".into(), "y".into()]);
        assert_eq!(t.to_string(), " A     B\n 日本  x\n abcd  y");
    }
}

//! Text from a binlog or a server, made safe to print on a terminal.
//!
//! Database and table names, statements and file names come from the
//! primary: a name may hold terminal escape sequences or a newline, which
//! printed raw could colour or clear the operator's screen or forge
//! output lines. Text output shows such characters escaped; JSON output
//! escapes them by itself.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) and every Unicode
/// bidirectional override written as a Rust escape (`\n`, `\u{1b}`,
/// `\u{202e}`); a backslash is doubled so that an escape cannot be
/// forged either. Text without any of them is returned as it is.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_kept() {
        assert!(matches!(escape_control("shop_1 ü"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\u{1b}[31mred\nx\\y\u{202e}"),
            "a\\u{1b}[31mred\\nx\\\\y\\u{202e}"
        );
        assert_eq!(escape_control("\t\u{7f}\u{9b}"), "\\t\\u{7f}\\u{9b}");
    }
}

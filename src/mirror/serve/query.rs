//! `COM_QUERY` answers: what replicas and binlog tools ask before a dump.
//!
//! A replica's IO thread (MariaDB's `get_master_version_and_clock`) reads
//! `UNIX_TIMESTAMP()`, `SHOW VARIABLES LIKE 'SERVER_ID'` and
//! `@@GLOBAL.gtid_domain_id`, sets `@master_heartbeat_period`,
//! `@master_binlog_checksum = @@global.binlog_checksum` (and reads it back),
//! `@mariadb_slave_capability`, `@slave_connect_state`,
//! `@slave_gtid_strict_mode`, `@slave_gtid_ignore_duplicates`, and by file
//! and position asks `binlog_gtid_pos(file, pos)`. Binlog tools ask
//! `SELECT VERSION()`, `@@version`, `@@server_id`, `@@binlog_checksum`,
//! `@@gtid_binlog_pos`, `SHOW BINARY LOGS`, `SHOW MASTER STATUS`,
//! `SHOW [GLOBAL] VARIABLES LIKE …`.
//!
//! This module answers those from [`Facts`] (the served mirror) and keeps
//! the session's user variables ([`Vars`]), which the dump reads. Anything
//! else gets an ERR packet saying what this server answers: never a hang,
//! never a made-up success. A system variable this server does not know is
//! error 1193 (`ER_UNKNOWN_SYSTEM_VARIABLE`), which replicas take as "an
//! older primary" where that is harmless (`SET skip_replication`).

use std::collections::HashMap;

use super::protocol::{Column, ColumnKind};

/// `ER_UNKNOWN_SYSTEM_VARIABLE`.
pub const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// `ER_PARSE_ERROR`.
pub const ER_PARSE_ERROR: u16 = 1064;
/// `ER_NOT_SUPPORTED_YET`.
pub const ER_NOT_SUPPORTED_YET: u16 = 1235;
/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`.
pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;
/// `ER_SP_DOES_NOT_EXIST` (unknown function).
pub const ER_SP_DOES_NOT_EXIST: u16 = 1305;
/// `ER_OUT_OF_RESOURCES`.
pub const ER_OUT_OF_RESOURCES: u16 = 1041;

/// Most bytes of user variables one session may hold.
const MAX_VAR_BYTES: usize = 64 * 1024;
/// Most user variables one session may hold.
const MAX_VARS: usize = 64;

/// A value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A string.
    Str(Vec<u8>),
}

impl Val {
    /// The value as text (`None` for NULL).
    pub fn text(&self) -> Option<Vec<u8>> {
        match self {
            Val::Null => None,
            Val::Int(i) => Some(i.to_string().into_bytes()),
            Val::Str(s) => Some(s.clone()),
        }
    }

    /// The value as an integer, the way MariaDB converts a string (its
    /// leading number; 0 if none).
    pub fn int(&self) -> Option<i64> {
        match self {
            Val::Null => None,
            Val::Int(i) => Some(*i),
            Val::Str(s) => {
                let t = String::from_utf8_lossy(s);
                let t = t.trim();
                let end = t
                    .char_indices()
                    .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
                    .map_or(t.len(), |(i, _)| i);
                Some(t[..end].parse().unwrap_or(0))
            }
        }
    }

    fn kind(&self) -> ColumnKind {
        match self {
            Val::Int(_) => ColumnKind::Int,
            _ => ColumnKind::Text,
        }
    }
}

/// A session's user variables (names are case-insensitive).
#[derive(Debug, Default, Clone)]
pub struct Vars {
    map: HashMap<String, Val>,
}

impl Vars {
    /// The value of `@name`, if it was set.
    pub fn get(&self, name: &str) -> Option<&Val> {
        self.map.get(&name.to_ascii_lowercase())
    }

    fn set(&mut self, name: &str, v: Val) -> Result<(), Answer> {
        let key = name.to_ascii_lowercase();
        let size = |v: &Val| match v {
            Val::Str(s) => s.len(),
            _ => 8,
        };
        let used: usize = self
            .map
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(k, v)| k.len() + size(v))
            .sum();
        if used + key.len() + size(&v) > MAX_VAR_BYTES
            || (self.map.len() >= MAX_VARS && !self.map.contains_key(&key))
        {
            return Err(Answer::err(
                ER_OUT_OF_RESOURCES,
                "HY000",
                format!("this binlog server keeps at most {MAX_VARS} user variables of {MAX_VAR_BYTES} bytes per session"),
            ));
        }
        self.map.insert(key, v);
        Ok(())
    }
}

/// What the served mirror says about itself.
pub trait Facts {
    /// A system variable (lower-case name), `None` if unknown.
    fn sysvar(&self, name: &str) -> Option<Val>;
    /// Every system variable this server knows, for `SHOW VARIABLES`.
    fn sysvar_names(&self) -> &'static [&'static str];
    /// `SHOW BINARY LOGS`: each file and its servable size.
    fn binary_logs(&self) -> Vec<(String, u64)>;
    /// `SHOW MASTER STATUS`: the last file and its servable size.
    fn master_status(&self) -> Option<(String, u64)>;
    /// `BINLOG_GTID_POS(file, pos)`: the GTID position there, `None` if the
    /// file is not served or `pos` is not an event boundary.
    fn binlog_gtid_pos(&self, file: &str, pos: u64) -> Option<String>;
    /// `UNIX_TIMESTAMP()`.
    fn now(&self) -> i64;
    /// `CONNECTION_ID()`.
    fn connection_id(&self) -> u32;
    /// `USER()`.
    fn user(&self) -> String;
}

/// The answer to one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// OK packet.
    Ok,
    /// A result set.
    Rows {
        /// Column names and kinds.
        columns: Vec<(String, ColumnKind)>,
        /// Rows.
        rows: Vec<Vec<Option<Vec<u8>>>>,
    },
    /// ERR packet.
    Err {
        /// Error number.
        code: u16,
        /// SQLSTATE.
        state: &'static str,
        /// Message.
        message: String,
    },
}

impl Answer {
    fn err(code: u16, state: &'static str, message: impl Into<String>) -> Self {
        Answer::Err {
            code,
            state,
            message: message.into(),
        }
    }

    /// The columns for [`super::protocol::PacketIo::result_set`].
    pub fn columns(cols: &[(String, ColumnKind)]) -> Vec<Column> {
        cols.iter()
            .map(|(n, k)| Column {
                name: n.clone(),
                kind: *k,
            })
            .collect()
    }
}

/// What this server answers, for the error of anything else.
const SUPPORTED: &str = "it answers SET of user and session variables, SELECT of variables and \
                         of UNIX_TIMESTAMP(), VERSION(), BINLOG_GTID_POS(), SHOW BINARY LOGS, \
                         SHOW MASTER STATUS, SHOW VARIABLES, and serves COM_BINLOG_DUMP";

/// Session variables a client may set; they change nothing here.
const HARMLESS_SESSION_VARS: &[&str] = &[
    "autocommit",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
    "group_concat_max_len",
    "interactive_timeout",
    "net_read_timeout",
    "net_write_timeout",
    "session_track_schema",
    "session_track_state_change",
    "session_track_system_variables",
    "sql_mode",
    "sql_select_limit",
    "time_zone",
    "transaction_isolation",
    "tx_isolation",
    "wait_timeout",
];

/// Answers a `COM_QUERY` (one or more `;`-separated statements): one
/// answer per statement, ending at the first error.
pub fn answer(sql: &[u8], vars: &mut Vars, facts: &dyn Facts) -> Vec<Answer> {
    let toks = match tokenize(sql) {
        Ok(t) => t,
        Err(e) => return vec![Answer::err(ER_PARSE_ERROR, "42000", e)],
    };
    let mut out = Vec::new();
    for stmt in toks.split(|t| t.tok == Tok::Punct(';')) {
        if stmt.is_empty() {
            continue;
        }
        let a = statement(sql, stmt, vars, facts);
        let failed = matches!(a, Answer::Err { .. });
        out.push(a);
        if failed {
            break;
        }
    }
    if out.is_empty() {
        out.push(Answer::err(ER_PARSE_ERROR, "42000", "Query was empty"));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    UserVar(String),
    SysVar(Option<String>, String),
    Str(Vec<u8>),
    Num(String),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn tokenize(s: &[u8]) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Comments; `/*!NNNNN … */` is MariaDB's executable comment: its
        // content counts.
        if s[i..].starts_with(b"/*!") {
            i += 3;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        if s[i..].starts_with(b"/*") {
            let end = s[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .ok_or("unterminated comment")?;
            i += 2 + end + 2;
            continue;
        }
        if s[i..].starts_with(b"*/") {
            i += 2;
            continue;
        }
        if c == b'#'
            || (s[i..].starts_with(b"--") && s.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()))
        {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let tok = if c == b'\'' || c == b'"' {
            let (v, n) = quoted(&s[i..], c)?;
            i += n;
            Tok::Str(v)
        } else if c == b'`' {
            let (v, n) = quoted(&s[i..], c)?;
            i += n;
            Tok::Word(String::from_utf8_lossy(&v).into_owned())
        } else if c == b'@' && s.get(i + 1) == Some(&b'@') {
            i += 2;
            let a = word_at(s, &mut i);
            if a.is_empty() {
                return Err("`@@` without a variable name".into());
            }
            let la = a.to_ascii_lowercase();
            if s.get(i) == Some(&b'.') && matches!(la.as_str(), "global" | "session" | "local") {
                i += 1;
                let b = word_at(s, &mut i);
                if b.is_empty() {
                    return Err(format!("`@@{a}.` without a variable name"));
                }
                Tok::SysVar(Some(la), b.to_ascii_lowercase())
            } else {
                Tok::SysVar(None, la)
            }
        } else if c == b'@' {
            i += 1;
            let name = if matches!(s.get(i), Some(b'\'' | b'"' | b'`')) {
                let (v, n) = quoted(&s[i..], s[i])?;
                i += n;
                String::from_utf8_lossy(&v).into_owned()
            } else {
                word_at(s, &mut i)
            };
            if name.is_empty() {
                return Err("`@` without a variable name".into());
            }
            Tok::UserVar(name)
        } else if c.is_ascii_digit() {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'.') {
                i += 1;
            }
            Tok::Num(String::from_utf8_lossy(&s[start..i]).into_owned())
        } else if is_ident(c) {
            Tok::Word(word_at(s, &mut i))
        } else if s[i..].starts_with(b":=") {
            i += 2;
            Tok::Punct('=')
        } else if b",;=().*-+".contains(&c) {
            i += 1;
            Tok::Punct(c as char)
        } else {
            return Err(format!(
                "unexpected character `{}` at offset {i}",
                String::from_utf8_lossy(&s[i..i + 1])
            ));
        };
        out.push(Token { tok, start, end: i });
    }
    Ok(out)
}

fn word_at(s: &[u8], i: &mut usize) -> String {
    let start = *i;
    while *i < s.len() && is_ident(s[*i]) {
        *i += 1;
    }
    String::from_utf8_lossy(&s[start..*i]).into_owned()
}

/// A quoted string starting at `s[0]`: its value and its length in `s`.
fn quoted(s: &[u8], q: u8) -> Result<(Vec<u8>, usize), String> {
    let mut v = Vec::new();
    let mut i = 1;
    while i < s.len() {
        let c = s[i];
        if c == q {
            if s.get(i + 1) == Some(&q) {
                v.push(q);
                i += 2;
                continue;
            }
            return Ok((v, i + 1));
        }
        if c == b'\\' && q != b'`' {
            let Some(&n) = s.get(i + 1) else { break };
            v.push(match n {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'0' => 0,
                b'Z' => 26,
                other => other,
            });
            i += 2;
            continue;
        }
        v.push(c);
        i += 1;
    }
    Err("unterminated quoted string".into())
}

fn kw(t: &Token, w: &str) -> bool {
    matches!(&t.tok, Tok::Word(x) if x.eq_ignore_ascii_case(w))
}

fn unsupported(sql: &[u8], stmt: &[Token]) -> Answer {
    let (a, b) = match (stmt.first(), stmt.last()) {
        (Some(f), Some(l)) => (f.start, l.end),
        _ => (0, 0),
    };
    let text = String::from_utf8_lossy(&sql[a..b]);
    let shown: String = text.chars().take(80).collect();
    Answer::err(
        ER_NOT_SUPPORTED_YET,
        "42000",
        format!("this binlog server (a parapply mirror) does not run `{shown}`; {SUPPORTED}"),
    )
}

fn statement(sql: &[u8], stmt: &[Token], vars: &mut Vars, facts: &dyn Facts) -> Answer {
    let first = &stmt[0];
    if kw(first, "set") {
        return set(sql, &stmt[1..], vars, facts).unwrap_or_else(|e| e);
    }
    if kw(first, "select") {
        return select(sql, &stmt[1..], vars, facts).unwrap_or_else(|e| e);
    }
    if kw(first, "show") {
        return show(sql, stmt, facts);
    }
    unsupported(sql, stmt)
}

fn syntax(sql: &[u8], at: Option<&Token>) -> Answer {
    let near = match at {
        Some(t) => String::from_utf8_lossy(&sql[t.start..sql.len().min(t.start + 40)]).into_owned(),
        None => String::new(),
    };
    Answer::err(
        ER_PARSE_ERROR,
        "42000",
        format!("You have an error in your SQL syntax near '{near}'"),
    )
}

fn set(sql: &[u8], toks: &[Token], vars: &mut Vars, facts: &dyn Facts) -> Result<Answer, Answer> {
    let mut i = 0;
    if toks.is_empty() {
        return Err(syntax(sql, None));
    }
    loop {
        let t = toks.get(i).ok_or_else(|| syntax(sql, None))?;
        // SET NAMES x [COLLATE y] / SET CHARACTER SET x.
        if kw(t, "names") || kw(t, "charset") {
            i += 2;
            if toks.get(i).is_some_and(|t| kw(t, "collate")) {
                i += 2;
            }
        } else if kw(t, "character") && toks.get(i + 1).is_some_and(|t| kw(t, "set")) {
            i += 3;
        } else {
            let (target, scope) = match &t.tok {
                Tok::UserVar(n) => (Target::User(n.clone()), None),
                Tok::SysVar(scope, n) => (Target::Sys(n.clone()), scope.clone()),
                Tok::Word(w)
                    if ["global", "session", "local"]
                        .contains(&w.to_ascii_lowercase().as_str()) =>
                {
                    i += 1;
                    match toks.get(i).map(|t| &t.tok) {
                        Some(Tok::Word(n)) => (
                            Target::Sys(n.to_ascii_lowercase()),
                            Some(w.to_ascii_lowercase()),
                        ),
                        _ => return Err(syntax(sql, toks.get(i))),
                    }
                }
                Tok::Word(n) => (Target::Sys(n.to_ascii_lowercase()), None),
                _ => return Err(syntax(sql, Some(t))),
            };
            i += 1;
            if toks.get(i).map(|t| &t.tok) != Some(&Tok::Punct('=')) {
                return Err(syntax(sql, toks.get(i)));
            }
            i += 1;
            let (v, n) = expr(sql, &toks[i..], vars, facts)?;
            i += n;
            match target {
                Target::User(name) => vars.set(&name, v)?,
                Target::Sys(name) => {
                    if scope.as_deref() == Some("global") {
                        return Err(Answer::err(
                            ER_SPECIFIC_ACCESS_DENIED_ERROR,
                            "42000",
                            format!("the binlog server is read-only: SET GLOBAL {name} is refused"),
                        ));
                    }
                    if !HARMLESS_SESSION_VARS.contains(&name.as_str()) {
                        return Err(Answer::err(
                            ER_UNKNOWN_SYSTEM_VARIABLE,
                            "HY000",
                            format!("Unknown system variable '{name}'"),
                        ));
                    }
                }
            }
        }
        match toks.get(i).map(|t| &t.tok) {
            None => return Ok(Answer::Ok),
            Some(Tok::Punct(',')) => i += 1,
            Some(_) => return Err(syntax(sql, toks.get(i))),
        }
    }
}

enum Target {
    User(String),
    Sys(String),
}

/// One expression at the start of `toks`: its value and how many tokens it
/// took.
fn expr(
    sql: &[u8],
    toks: &[Token],
    vars: &Vars,
    facts: &dyn Facts,
) -> Result<(Val, usize), Answer> {
    let t = toks.first().ok_or_else(|| syntax(sql, None))?;
    Ok(match &t.tok {
        Tok::Str(s) => (Val::Str(s.clone()), 1),
        Tok::Num(n) => (number(n), 1),
        Tok::Punct('-') => match toks.get(1).map(|t| &t.tok) {
            Some(Tok::Num(n)) => (
                match number(n) {
                    Val::Int(i) => Val::Int(-i),
                    v => v,
                },
                2,
            ),
            _ => return Err(syntax(sql, Some(t))),
        },
        Tok::UserVar(n) => (vars.get(n).cloned().unwrap_or(Val::Null), 1),
        Tok::SysVar(_, n) => (
            facts.sysvar(n).ok_or_else(|| {
                Answer::err(
                    ER_UNKNOWN_SYSTEM_VARIABLE,
                    "HY000",
                    format!("Unknown system variable '{n}'"),
                )
            })?,
            1,
        ),
        Tok::Word(w) if w.eq_ignore_ascii_case("null") => (Val::Null, 1),
        Tok::Word(w) if w.eq_ignore_ascii_case("default") => (Val::Null, 1),
        Tok::Word(w) if toks.get(1).map(|t| &t.tok) == Some(&Tok::Punct('(')) => {
            // A function call: arguments up to the matching ')'.
            let mut args = Vec::new();
            let mut i = 2;
            if toks.get(i).map(|t| &t.tok) == Some(&Tok::Punct(')')) {
                i += 1;
            } else {
                loop {
                    let (v, n) = expr(sql, &toks[i..], vars, facts)?;
                    args.push(v);
                    i += n;
                    match toks.get(i).map(|t| &t.tok) {
                        Some(Tok::Punct(',')) => i += 1,
                        Some(Tok::Punct(')')) => {
                            i += 1;
                            break;
                        }
                        _ => return Err(syntax(sql, toks.get(i))),
                    }
                }
            }
            (function(w, &args, facts)?, i)
        }
        Tok::Word(w) if w.eq_ignore_ascii_case("true") => (Val::Int(1), 1),
        Tok::Word(w) if w.eq_ignore_ascii_case("false") => (Val::Int(0), 1),
        Tok::Word(w) if w.eq_ignore_ascii_case("on") => (Val::Str(b"ON".to_vec()), 1),
        Tok::Word(w) if w.eq_ignore_ascii_case("off") => (Val::Str(b"OFF".to_vec()), 1),
        Tok::Word(w) => (Val::Str(w.clone().into_bytes()), 1),
        _ => return Err(syntax(sql, Some(t))),
    })
}

fn number(n: &str) -> Val {
    match n.parse::<i64>() {
        Ok(i) => Val::Int(i),
        Err(_) => Val::Str(n.as_bytes().to_vec()),
    }
}

fn function(name: &str, args: &[Val], facts: &dyn Facts) -> Result<Val, Answer> {
    let n = name.to_ascii_lowercase();
    let arity = |k: usize| {
        if args.len() == k {
            Ok(())
        } else {
            Err(Answer::err(
                1582,
                "42000",
                format!("Incorrect parameter count in the call to native function '{name}'"),
            ))
        }
    };
    Ok(match n.as_str() {
        "unix_timestamp" => {
            arity(0)?;
            Val::Int(facts.now())
        }
        "version" => {
            arity(0)?;
            facts.sysvar("version").unwrap_or(Val::Null)
        }
        "database" | "schema" => {
            arity(0)?;
            Val::Null
        }
        "user" | "current_user" | "session_user" | "system_user" => {
            arity(0)?;
            Val::Str(facts.user().into_bytes())
        }
        "connection_id" => {
            arity(0)?;
            Val::Int(i64::from(facts.connection_id()))
        }
        "binlog_gtid_pos" => {
            arity(2)?;
            match (&args[0], args[1].int()) {
                (Val::Str(f), Some(p)) if p >= 0 => {
                    let f = String::from_utf8_lossy(f).into_owned();
                    // MariaDB treats positions below 4 as 4.
                    match facts.binlog_gtid_pos(&f, (p as u64).max(4)) {
                        Some(s) => Val::Str(s.into_bytes()),
                        None => Val::Null,
                    }
                }
                _ => Val::Null,
            }
        }
        _ => {
            return Err(Answer::err(
                ER_SP_DOES_NOT_EXIST,
                "42000",
                format!("FUNCTION {name} does not exist in this binlog server; {SUPPORTED}"),
            ))
        }
    })
}

fn select(sql: &[u8], toks: &[Token], vars: &Vars, facts: &dyn Facts) -> Result<Answer, Answer> {
    let mut columns = Vec::new();
    let mut row = Vec::new();
    let mut i = 0;
    loop {
        let start = toks.get(i).ok_or_else(|| syntax(sql, None))?.start;
        let (v, n) = expr(sql, &toks[i..], vars, facts).map_err(|e| match e {
            // `SELECT * FROM t`, `SELECT a + b`, …: not a syntax error, just
            // not something this server evaluates.
            Answer::Err {
                code: ER_PARSE_ERROR,
                ..
            } => unsupported(sql, toks),
            e => e,
        })?;
        let mut name = String::from_utf8_lossy(&sql[start..toks[i + n - 1].end]).into_owned();
        i += n;
        if toks.get(i).is_some_and(|t| kw(t, "as")) {
            i += 1;
        }
        if let Some(t) = toks.get(i).filter(|t| !kw(t, "limit") && !kw(t, "from")) {
            match &t.tok {
                Tok::Str(a) => name = String::from_utf8_lossy(a).into_owned(),
                Tok::Word(a) => name = a.clone(),
                _ => {}
            }
            if matches!(t.tok, Tok::Str(_) | Tok::Word(_)) {
                i += 1;
            }
        }
        columns.push((name, v.kind()));
        row.push(v.text());
        match toks.get(i) {
            Some(t) if t.tok == Tok::Punct(',') => i += 1,
            _ => break,
        }
    }
    let mut rows = vec![row];
    if toks.get(i).is_some_and(|t| kw(t, "from")) && toks.get(i + 1).is_some_and(|t| kw(t, "dual"))
    {
        i += 2;
    }
    if toks.get(i).is_some_and(|t| kw(t, "limit")) {
        match toks.get(i + 1).map(|t| &t.tok) {
            Some(Tok::Num(n)) => {
                if n == "0" {
                    rows.clear();
                }
                i += 2;
            }
            _ => return Err(syntax(sql, toks.get(i + 1))),
        }
    }
    if i != toks.len() {
        return Err(unsupported(sql, toks));
    }
    Ok(Answer::Rows { columns, rows })
}

fn like(pattern: &[u8], s: &[u8]) -> bool {
    // SQL LIKE, case-insensitive, `\` escaping; dynamic programming over
    // (pattern, string) positions, so any pattern costs O(|p|·|s|).
    let mut toks: Vec<Option<u8>> = Vec::new(); // None: `%`; Some(0): `_`
    let mut lits: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'%' => {
                toks.push(None);
                lits.push(false);
            }
            b'_' => {
                toks.push(Some(0));
                lits.push(false);
            }
            b'\\' if i + 1 < pattern.len() => {
                i += 1;
                toks.push(Some(pattern[i]));
                lits.push(true);
            }
            c => {
                toks.push(Some(c));
                lits.push(true);
            }
        }
        i += 1;
    }
    // reach[j]: the first k tokens can match s[..j].
    let mut reach = vec![false; s.len() + 1];
    reach[0] = true;
    for (k, t) in toks.iter().enumerate() {
        let mut next = vec![false; s.len() + 1];
        match t {
            None => {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            Some(c) => {
                for j in 0..s.len() {
                    let ok = if lits[k] {
                        s[j].eq_ignore_ascii_case(c)
                    } else {
                        true
                    };
                    next[j + 1] = reach[j] && ok;
                }
            }
        }
        reach = next;
    }
    reach[s.len()]
}

fn show(sql: &[u8], stmt: &[Token], facts: &dyn Facts) -> Answer {
    let words: Vec<String> = stmt[1..]
        .iter()
        .map(|t| match &t.tok {
            Tok::Word(w) => w.to_ascii_lowercase(),
            _ => String::new(),
        })
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let text = |s: &str| Some(s.as_bytes().to_vec());
    match w.as_slice() {
        ["binary" | "master", "logs"] => Answer::Rows {
            columns: vec![
                ("Log_name".into(), ColumnKind::Text),
                ("File_size".into(), ColumnKind::Int),
            ],
            rows: facts
                .binary_logs()
                .into_iter()
                .map(|(f, n)| vec![text(&f), text(&n.to_string())])
                .collect(),
        },
        ["master" | "binlog", "status"] => Answer::Rows {
            columns: vec![
                ("File".into(), ColumnKind::Text),
                ("Position".into(), ColumnKind::Int),
                ("Binlog_Do_DB".into(), ColumnKind::Text),
                ("Binlog_Ignore_DB".into(), ColumnKind::Text),
            ],
            rows: facts
                .master_status()
                .into_iter()
                .map(|(f, n)| vec![text(&f), text(&n.to_string()), text(""), text("")])
                .collect(),
        },
        ["warnings" | "errors"] => Answer::Rows {
            columns: vec![
                ("Level".into(), ColumnKind::Text),
                ("Code".into(), ColumnKind::Int),
                ("Message".into(), ColumnKind::Text),
            ],
            rows: Vec::new(),
        },
        _ if w.contains(&"variables") => {
            let at = w.iter().position(|x| *x == "variables").unwrap_or(0);
            let (scope, rest) = (&w[..at], &w[at + 1..]);
            if scope.len() > 1
                || !scope
                    .iter()
                    .all(|s| ["global", "session", "local"].contains(s))
            {
                return unsupported(sql, stmt);
            }
            let pattern: Option<Vec<u8>> = match rest {
                [] => None,
                ["like", ""] => match &stmt[stmt.len() - 1].tok {
                    Tok::Str(p) => Some(p.clone()),
                    _ => return syntax(sql, stmt.last()),
                },
                _ => return unsupported(sql, stmt),
            };
            let rows = facts
                .sysvar_names()
                .iter()
                .filter(|n| pattern.as_ref().is_none_or(|p| like(p, n.as_bytes())))
                .filter_map(|n| {
                    let v = facts.sysvar(n)?;
                    Some(vec![text(n), Some(v.text().unwrap_or_default())])
                })
                .collect();
            Answer::Rows {
                columns: vec![
                    ("Variable_name".into(), ColumnKind::Text),
                    ("Value".into(), ColumnKind::Text),
                ],
                rows,
            }
        }
        _ => unsupported(sql, stmt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct F;
    impl Facts for F {
        fn sysvar(&self, name: &str) -> Option<Val> {
            match name {
                "server_id" => Some(Val::Int(7)),
                "binlog_checksum" => Some(Val::Str(b"CRC32".to_vec())),
                "version" => Some(Val::Str(b"10.11.6-MariaDB-log".to_vec())),
                "gtid_domain_id" => Some(Val::Int(0)),
                _ => None,
            }
        }
        fn sysvar_names(&self) -> &'static [&'static str] {
            &["binlog_checksum", "server_id", "version"]
        }
        fn binary_logs(&self) -> Vec<(String, u64)> {
            vec![("b.000001".into(), 400), ("b.000002".into(), 300)]
        }
        fn master_status(&self) -> Option<(String, u64)> {
            Some(("b.000002".into(), 300))
        }
        fn binlog_gtid_pos(&self, file: &str, pos: u64) -> Option<String> {
            (file == "b.000001" && pos == 4).then(|| "0-7-3".into())
        }
        fn now(&self) -> i64 {
            1000
        }
        fn connection_id(&self) -> u32 {
            5
        }
        fn user(&self) -> String {
            "repl@h".into()
        }
    }

    fn one(sql: &str, vars: &mut Vars) -> Answer {
        let mut a = answer(sql.as_bytes(), vars, &F);
        assert_eq!(a.len(), 1, "{sql}: {a:?}");
        a.remove(0)
    }

    fn cell(a: &Answer) -> Option<String> {
        match a {
            Answer::Rows { rows, .. } => rows[0][0]
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_a_replica_asks() {
        let mut v = Vars::default();
        assert_eq!(
            cell(&one("SELECT UNIX_TIMESTAMP()", &mut v)).as_deref(),
            Some("1000")
        );
        match one("SHOW VARIABLES LIKE 'SERVER_ID'", &mut v) {
            Answer::Rows { rows, .. } => assert_eq!(rows[0][1].as_deref(), Some(&b"7"[..])),
            o => panic!("{o:?}"),
        }
        assert_eq!(
            one("SET @master_heartbeat_period= 1000000000", &mut v),
            Answer::Ok
        );
        assert_eq!(
            one(
                "SET @master_binlog_checksum= @@global.binlog_checksum",
                &mut v
            ),
            Answer::Ok
        );
        assert_eq!(
            cell(&one("SELECT @master_binlog_checksum", &mut v)).as_deref(),
            Some("CRC32")
        );
        assert_eq!(one("SET @mariadb_slave_capability=4", &mut v), Answer::Ok);
        assert_eq!(
            v.get("MARIADB_SLAVE_CAPABILITY").and_then(Val::int),
            Some(4)
        );
        assert_eq!(
            cell(&one("SELECT @@GLOBAL.gtid_domain_id", &mut v)).as_deref(),
            Some("0")
        );
        assert_eq!(
            one("SET @slave_connect_state='0-1-5,1-1-2'", &mut v),
            Answer::Ok
        );
        assert_eq!(
            v.get("slave_connect_state"),
            Some(&Val::Str(b"0-1-5,1-1-2".to_vec()))
        );
        assert_eq!(
            cell(&one("SELECT binlog_gtid_pos('b.000001',4)", &mut v)).as_deref(),
            Some("0-7-3")
        );
        assert_eq!(
            cell(&one("SELECT binlog_gtid_pos('b.000001',9)", &mut v)),
            None
        );
        match one("SET skip_replication=1", &mut v) {
            Answer::Err { code, .. } => assert_eq!(code, ER_UNKNOWN_SYSTEM_VARIABLE),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn what_tools_ask_and_what_is_refused() {
        let mut v = Vars::default();
        let a = answer(
            b"SET @a = 1, @b := 'x'; SELECT @a, @b AS bee, @@version LIMIT 1",
            &mut v,
            &F,
        );
        assert_eq!(a.len(), 2);
        match &a[1] {
            Answer::Rows { columns, rows } => {
                assert_eq!(columns[1].0, "bee");
                assert_eq!(columns[2].0, "@@version");
                assert_eq!(rows[0][2].as_deref(), Some(&b"10.11.6-MariaDB-log"[..]));
            }
            o => panic!("{o:?}"),
        }
        match one("SHOW BINARY LOGS", &mut v) {
            Answer::Rows { rows, .. } => assert_eq!(rows.len(), 2),
            o => panic!("{o:?}"),
        }
        match one("show master status", &mut v) {
            Answer::Rows { rows, .. } => assert_eq!(rows[0][1].as_deref(), Some(&b"300"[..])),
            o => panic!("{o:?}"),
        }
        for bad in [
            "DROP TABLE t",
            "SELECT * FROM mysql.user",
            "SET GLOBAL read_only = 0",
            "SELECT @@nonsense",
            "SELECT sleep(100)",
            "SELECT 'unterminated",
            "",
        ] {
            let a = answer(bad.as_bytes(), &mut v, &F);
            assert!(matches!(a.last(), Some(Answer::Err { .. })), "{bad}: {a:?}");
        }
        assert!(like(b"server\\_id", b"SERVER_ID"));
        assert!(like(b"%check%", b"binlog_checksum"));
        assert!(!like(b"server_i", b"server_id"));
    }

    #[test]
    fn user_variables_are_bounded() {
        let mut v = Vars::default();
        let big = "x".repeat(MAX_VAR_BYTES);
        let a = answer(format!("SET @a = '{big}'").as_bytes(), &mut v, &F);
        assert!(matches!(
            a[0],
            Answer::Err {
                code: ER_OUT_OF_RESOURCES,
                ..
            }
        ));
        for i in 0..MAX_VARS {
            assert_eq!(one(&format!("SET @v{i} = 1"), &mut v), Answer::Ok);
        }
        assert!(matches!(
            one("SET @one_more = 1", &mut v),
            Answer::Err { .. }
        ));
        assert_eq!(one("SET @v0 = 2", &mut v), Answer::Ok);
    }
}

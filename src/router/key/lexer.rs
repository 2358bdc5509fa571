//! The lexer: MariaDB's reading of the bytes of a statement (comments, versioned comments,
//! quotes per sql_mode, multibyte characters per client character set, qualified names),
//! as tokens for the scanner and the fast path.

use super::*;
// ---------------------------------------------------------------------------------------
// Lexer: tokens with comments and whitespace skipped, keywords classified, qualified names
// `a.b.c` reduced to their last part. Tokens carry byte ranges (12 bytes in all) so they
// travel in registers; the text is sliced only when needed.

pub(in crate::router) const fn ident_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        i += 1;
    }
    t
}

/// Bytes that may appear in an unquoted identifier (multi-byte UTF-8 included).
pub(in crate::router) static IDENT: [bool; 256] = ident_table();

pub(in crate::router) const C_OTHER: u8 = 0;
/// Starts an identifier or keyword: an identifier byte that is not a digit, or a backtick.
pub(in crate::router) const C_WORD: u8 = 1;

pub(in crate::router) const fn class_table() -> [u8; 256] {
    let mut t = [C_OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if (IDENT[i] && !b.is_ascii_digit()) || b == b'`' {
            t[i] = C_WORD;
        }
        i += 1;
    }
    t
}

pub(in crate::router) static CLASS: [u8; 256] = class_table();

#[inline(always)]
pub(in crate::router) fn is_ident(b: u8) -> bool {
    IDENT[usize::from(b)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::router) enum Op {
    LParen,
    RParen,
    Comma,
    Semi,
    Eq,
    NullEq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
    OrOr,
    AndAnd,
    Assign,
    Plus,
    Minus,
    Other,
}

/// A byte range of the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::router) struct Span {
    pub(in crate::router) start: u32,
    pub(in crate::router) end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::router) enum T {
    Kw(Kw, Span),
    /// An identifier (unquoted non-keyword, or backticked without the backticks);
    /// a qualified name `a.b.c` is reduced to its last part.
    Name(Span),
    /// String content and whether it holds an escape (backslash or doubled quote).
    Str(Span, bool),
    Num(Span),
    Param,
    Var,
    Op(Op),
    End,
    /// An unterminated string, quoted identifier or comment: the end of the scan.
    Bad,
}

#[derive(Debug, Clone, Copy)]
pub(in crate::router) struct Lexer<'a> {
    pub(in crate::router) s: &'a [u8],
    pub(in crate::router) pos: usize,
    /// Inside `/*! … */` or `/*M! … */` that MariaDB executes: its content is SQL.
    pub(in crate::router) exec: bool,
    /// How MariaDB reads this statement's bytes on the connection that runs it.
    pub(in crate::router) dialect: Dialect,
    /// Why the last [`T::Bad`] was returned.
    pub(in crate::router) bad: KeyProblem,
}

/// The index of the first byte above ASCII space at or after `i`, and that byte (None at
/// the end of the statement). Shared by both lexers.
#[inline(always)]
pub(in crate::router) fn skip_spaces(s: &[u8], mut i: usize) -> (usize, Option<u8>) {
    loop {
        match s.get(i) {
            Some(&b) if b <= b' ' => i += 1,
            other => return (i, other.copied()),
        }
    }
}

/// Index just past the `*/` closing a comment whose content starts at `from`.
pub(in crate::router) fn comment_end(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&c) = s.get(i) {
        if c == b'*' && s.get(i + 1) == Some(&b'/') {
            return Some(i + 2);
        }
        i += 1;
    }
    None
}

/// Index just past the `*/` closing a version comment that MariaDB skips: its body may
/// hold one level of nested `/* … */` (MariaDB's `consume_comment(lip, 1)`).
pub(in crate::router) fn skipped_version_comment_end(s: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&c) = s.get(i) {
        if c == b'/' && s.get(i + 1) == Some(&b'*') {
            i = comment_end(s, i + 2)?;
            continue;
        }
        if c == b'*' && s.get(i + 1) == Some(&b'/') {
            return Some(i + 2);
        }
        i += 1;
    }
    None
}

/// What a `-` at `i` that is followed by another `-` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::router) enum Dash {
    /// A comment to the end of the line.
    Comment,
    /// Two minus signs.
    Minus,
    /// A byte whose class (space or control) depends on the character set: unreadable.
    Unsure,
}

/// Whether a `--` at `i` starts a comment: MariaDB wants a space or a control byte after
/// it (`my_isspace || my_iscntrl`), which for bytes of 0x80 and above depends on the
/// character set.
pub(in crate::router) fn dash_comment(s: &[u8], i: usize) -> Dash {
    if s.get(i + 1) != Some(&b'-') {
        return Dash::Minus;
    }
    match s.get(i + 2) {
        None => Dash::Comment,
        Some(&c) if c <= b' ' || c == 0x7F => Dash::Comment,
        Some(&c) if c >= 0x80 => Dash::Unsure,
        Some(_) => Dash::Minus,
    }
}

/// Index just past the newline ending a line comment that starts at `i` (the end of the
/// statement if none), or `i` itself when the line holds a NUL byte before its end.
pub(in crate::router) fn line_end(s: &[u8], i: usize) -> usize {
    let rest = s.get(i..).unwrap_or_default();
    let len = rest
        .iter()
        .position(|&c| c == b'\n')
        .map_or(rest.len(), |n| n + 1);
    if rest.get(..len).unwrap_or_default().contains(&0) {
        i
    } else {
        i + len
    }
}

#[inline(always)]
pub(in crate::router) fn span(start: usize, end: usize) -> Span {
    // `scan` refuses statements of 4 GiB or more, so positions fit in u32.
    Span {
        start: start as u32,
        end: end as u32,
    }
}

impl Span {
    /// The bytes of `s` this span covers (empty if it does not fit: never for spans
    /// made over `s`).
    #[inline(always)]
    pub(in crate::router) fn of(self, s: &[u8]) -> &[u8] {
        s.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `s`.
    pub(in crate::router) fn new(s: &'a [u8], dialect: Dialect) -> Self {
        Lexer {
            s,
            pos: 0,
            exec: false,
            dialect,
            bad: KeyProblem::Unterminated,
        }
    }

    #[inline(always)]
    pub(in crate::router) fn text(&self, sp: Span) -> &'a [u8] {
        sp.of(self.s)
    }

    /// An unterminated string, quoted identifier or comment: the end.
    pub(in crate::router) fn fail(&mut self) -> T {
        self.pos = self.s.len();
        self.exec = false;
        T::Bad
    }

    /// Text that MariaDB may read differently from this lexer: the end.
    #[cold]
    pub(in crate::router) fn unreadable(&mut self) -> T {
        self.bad = KeyProblem::Unreadable;
        self.fail()
    }

    /// Skips a `#` or `--` comment. MariaDB ends it at a newline or a NUL byte (what
    /// follows a NUL is code to it): a NUL makes the statement unreadable.
    pub(in crate::router) fn skip_line(&mut self) -> Result<(), T> {
        let s = self.s;
        while let Some(&c) = s.get(self.pos) {
            self.pos += 1;
            match c {
                b'\n' => break,
                0 => return Err(self.unreadable()),
                _ => {}
            }
        }
        Ok(())
    }

    /// A `/*!` (marker 3) or `/*M!` (marker 4) at `self.pos`. With five or six digits it
    /// is a version comment: code when the version is at most the server's and, for plain
    /// `/*!`, outside MySQL 5.7's range 50700–99999; else skipped as a comment. Without
    /// five digits its whole content (digits included) is code.
    pub(in crate::router) fn version_comment(&mut self, marker: usize) -> Result<(), T> {
        if self.exec {
            // Nested in another executed comment: MariaDB's handling is not ours to guess.
            return Err(self.unreadable());
        }
        let s = self.s;
        let body = self.pos + marker;
        let digits = s
            .get(body..)
            .unwrap_or_default()
            .iter()
            .take(6)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits < 5 {
            self.pos = body;
            self.exec = true;
            return Ok(());
        }
        let version = s
            .get(body..body + digits)
            .unwrap_or_default()
            .iter()
            .fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
        let maria = marker == 4;
        let server = self.dialect.version;
        if server == 0 {
            return Err(self.unreadable());
        }
        if version <= server && (!(50700..=99999).contains(&version) || maria) {
            self.pos = body + digits;
            self.exec = true;
            return Ok(());
        }
        match skipped_version_comment_end(s, body) {
            Some(end) => {
                self.pos = end;
                Ok(())
            }
            None => Err(self.fail()),
        }
    }

    /// Skips whitespace and comments up to the next token; returns its first byte (None
    /// at the end), or the token to return at once (`Bad`).
    #[inline(always)]
    pub(in crate::router) fn trivia(&mut self) -> Result<Option<u8>, T> {
        let s = self.s;
        loop {
            let (pos, b) = skip_spaces(s, self.pos);
            self.pos = pos;
            let Some(b) = b else {
                return if self.exec {
                    Err(self.fail())
                } else {
                    Ok(None)
                };
            };
            match b {
                b'#' => self.skip_line()?,
                b'-' => match dash_comment(s, pos) {
                    Dash::Comment => self.skip_line()?,
                    Dash::Minus => return Ok(Some(b)),
                    Dash::Unsure => return Err(self.unreadable()),
                },
                b'/' if s.get(pos + 1) == Some(&b'*') => match s.get(pos + 2) {
                    Some(b'!') => self.version_comment(3)?,
                    Some(b'M') if s.get(pos + 3) == Some(&b'!') => self.version_comment(4)?,
                    _ if self.exec => return Err(self.unreadable()),
                    _ => match comment_end(s, pos + 2) {
                        Some(end) => self.pos = end,
                        None => return Err(self.fail()),
                    },
                },
                b'*' if self.exec && s.get(pos + 1) == Some(&b'/') => {
                    self.exec = false;
                    self.pos += 2;
                }
                _ => return Ok(Some(b)),
            }
        }
    }

    /// The next token, out of line: for look-ahead from the scanner's rarer paths.
    #[inline(never)]
    pub(in crate::router) fn peek_next(mut self) -> T {
        self.next()
    }

    #[inline(always)]
    pub(in crate::router) fn next(&mut self) -> T {
        // Whitespace and identifiers first: they are most of the bytes.
        let (pos, b) = skip_spaces(self.s, self.pos);
        self.pos = pos;
        if let Some(b) = b {
            if CLASS[usize::from(b)] == C_WORD {
                return self.word();
            }
        }
        let b = match self.trivia() {
            Ok(Some(b)) => b,
            Ok(None) => return T::End,
            Err(t) => return t,
        };
        match b {
            _ if CLASS[usize::from(b)] == C_WORD => self.word(),
            b'"' if self.dialect.ansi_quotes => self.word(),
            b'\'' | b'"' => match self.quoted(b) {
                Some((sp, escaped)) => T::Str(sp, escaped),
                None => self.fail(),
            },
            b'0'..=b'9' => self.number(),
            b'?' => {
                self.pos += 1;
                T::Param
            }
            b'@' => self.variable(),
            _ => self.op(b),
        }
    }

    /// Content of a quoted string or identifier starting at `self.pos`, and whether it
    /// holds an escape; None when it is not closed. Backslashes escape only in strings and
    /// only without NO_BACKSLASH_ESCAPES; in sjis/cp932/gbk/big5 a lead byte and its
    /// trail byte are one character (the trail may be a backslash or a quote character).
    #[inline]
    pub(in crate::router) fn quoted(&mut self, q: u8) -> Option<(Span, bool)> {
        let s = self.s;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let string = q == b'\'' || (q == b'"' && !self.dialect.ansi_quotes);
        let backslash = string && self.dialect.backslash_escapes;
        let mb = match self.dialect.charset {
            Charset::AsciiTrail(table) => Some(table),
            _ => None,
        };
        while let Some(&c) = s.get(i) {
            if c == q {
                if s.get(i + 1) == Some(&q) {
                    escaped = true;
                    i += 2;
                    continue;
                }
                self.pos = i + 1;
                return Some((span(start, i), escaped));
            }
            if c == b'\\' && backslash {
                escaped = true;
                i += 2;
                continue;
            }
            if c >= 0x80 {
                if let Some(table) = mb {
                    i += table.char_len(c, s.get(i + 1).copied());
                    continue;
                }
            }
            i += 1;
        }
        None
    }

    /// One part of an identifier: unquoted, backticked or (ANSI_QUOTES) double-quoted.
    /// Non-ASCII bytes outside quotes are identifier bytes in UTF-8 (as valid UTF-8) and
    /// in a single-byte character set where MariaDB reads them as letters
    /// (`Charset::ident_byte`); anything else may be whitespace to MariaDB.
    #[inline(always)]
    pub(in crate::router) fn ident_part(&mut self) -> Result<(Span, bool), T> {
        let s = self.s;
        match s.get(self.pos) {
            Some(&q @ b'`') => return self.quoted(q).map(|(sp, _)| (sp, true)).ok_or(T::Bad),
            Some(&q @ b'"') if self.dialect.ansi_quotes => {
                return self.quoted(q).map(|(sp, _)| (sp, true)).ok_or(T::Bad)
            }
            _ => {}
        }
        let start = self.pos;
        let rest = s.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .skip(1)
            .position(|&c| !is_ident(c))
            .map_or(rest.len(), |n| n + 1);
        let end = start + len;
        let part = s.get(start..end).unwrap_or_default();
        if !part.is_ascii() {
            let charset = self.dialect.charset;
            let readable = match charset {
                Charset::Utf8 => std::str::from_utf8(part).is_ok(),
                Charset::SingleByte(_) => part.iter().all(|&b| b < 0x80 || charset.ident_byte(b)),
                _ => false,
            };
            if !readable {
                return Err(self.unreadable());
            }
        }
        self.pos = end;
        Ok((span(start, end), false))
    }

    /// Whether a qualifying `.` and an identifier follow (across whitespace and comments,
    /// as MariaDB's grammar allows: `a . b`, `a/**/.b`); if so, moves to that identifier.
    /// `t.*` is not qualifying; a digit right after the dot starts an identifier
    /// (`t.1x`), a digit after whitespace or a comment makes the statement unreadable.
    #[inline(always)]
    pub(in crate::router) fn qualifying_dot(&mut self) -> Result<bool, T> {
        let s = self.s;
        let mut ahead = *self;
        if s.get(self.pos) == Some(&b'.') {
            ahead.pos += 1;
        } else {
            let (after, b) = skip_spaces(s, self.pos);
            if !matches!(b, Some(b'.' | b'/' | b'#' | b'-' | b'*')) {
                // The next token starts there: spare it skipping the spaces again.
                self.pos = after;
                return Ok(false);
            }
            // A broken comment ahead is the next token's to report.
            match ahead.trivia() {
                Ok(Some(b'.')) => ahead.pos += 1,
                _ => return Ok(false),
            }
        }
        // Directly after the dot MariaDB reads any identifier characters as a name,
        // digits first included (`t.1x`, `t.5` are columns).
        let adjacent = ahead.pos == self.pos + 1;
        if adjacent && s.get(ahead.pos).is_some_and(|c| c.is_ascii_digit()) {
            *self = ahead;
            return Ok(true);
        }
        let next = match s.get(ahead.pos) {
            Some(&c) if c > b' ' && c != b'/' && c != b'#' && c != b'-' => Some(c),
            _ => match ahead.trivia() {
                Ok(next) => next,
                Err(_) => return Err(self.unreadable()),
            },
        };
        match next {
            Some(c) if c.is_ascii_digit() => Err(self.unreadable()),
            Some(c) if is_ident(c) || c == b'`' || (c == b'"' && self.dialect.ansi_quotes) => {
                *self = ahead;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// An identifier or keyword; a qualified name `a.b.c` (with or without whitespace or
    /// comments around the dots) becomes its last part.
    #[inline(always)]
    pub(in crate::router) fn word(&mut self) -> T {
        let (mut sp, quoted) = match self.ident_part() {
            Ok(part) => part,
            Err(_) if self.bad == KeyProblem::Unreadable => return T::Bad,
            Err(_) => return self.fail(),
        };
        // A qualified last part is never a keyword (`t.order` is a column). A keyword is
        // a qualifier only when a dot and an identifier character follow it directly
        // (`where.x` is a name, `WHERE .x` the keyword): MariaDB looks a word up as a
        // keyword unless that is so.
        let kw = if quoted { None } else { keyword(self.text(sp)) };
        if let Some(k) = kw {
            let adjacent = self.s.get(self.pos) == Some(&b'.')
                && self.s.get(self.pos + 1).is_some_and(|&c| is_ident(c));
            if !adjacent {
                return T::Kw(k, sp);
            }
        }
        let mut qualified = false;
        loop {
            match self.qualifying_dot() {
                Ok(true) => {}
                Ok(false) => break,
                Err(t) => return t,
            }
            match self.ident_part() {
                Ok((part, _)) => {
                    sp = part;
                    qualified = true;
                }
                Err(_) if self.bad == KeyProblem::Unreadable => return T::Bad,
                Err(_) => return self.fail(),
            }
        }
        match kw {
            Some(k) if !qualified => T::Kw(k, sp),
            _ => T::Name(sp),
        }
    }

    pub(in crate::router) fn number(&mut self) -> T {
        let s = self.s;
        let start = self.pos;
        let digit = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
        let mut i = start;
        while digit(i) {
            i += 1;
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            while digit(i) {
                i += 1;
            }
        }
        if matches!(s.get(i), Some(b'e' | b'E')) {
            let j = if matches!(s.get(i + 1), Some(b'+' | b'-')) {
                i + 2
            } else {
                i + 1
            };
            if digit(j) {
                i = j;
                while digit(i) {
                    i += 1;
                }
            }
        }
        // 0x1F, 0b101, 1abc (an identifier starting with digits): one odd "number".
        while s.get(i).is_some_and(|&c| is_ident(c)) {
            i += 1;
        }
        self.pos = i;
        T::Num(span(start, i))
    }

    /// `@name`, `@@name`, `@@session.name`, `@'quoted'`: never a column.
    pub(in crate::router) fn variable(&mut self) -> T {
        let s = self.s;
        let mut i = self.pos + 1;
        if s.get(i) == Some(&b'@') {
            i += 1;
        }
        if let Some(&q @ (b'\'' | b'"' | b'`')) = s.get(i) {
            self.pos = i;
            return match self.quoted(q) {
                Some(_) => T::Var,
                None => self.fail(),
            };
        }
        while s.get(i).is_some_and(|&c| is_ident(c) || c == b'.') {
            i += 1;
        }
        self.pos = i;
        T::Var
    }

    pub(in crate::router) fn op(&mut self, b: u8) -> T {
        let s = self.s;
        let n1 = s.get(self.pos + 1).copied();
        let n2 = s.get(self.pos + 2).copied();
        let (op, len) = match b {
            b'(' => (Op::LParen, 1),
            b')' => (Op::RParen, 1),
            b',' => (Op::Comma, 1),
            b';' => (Op::Semi, 1),
            b'=' => (Op::Eq, 1),
            b'<' => match (n1, n2) {
                (Some(b'='), Some(b'>')) => (Op::NullEq, 3),
                (Some(b'='), _) => (Op::Le, 2),
                (Some(b'>'), _) => (Op::Ne, 2),
                (Some(b'<'), _) => (Op::Other, 2),
                _ => (Op::Lt, 1),
            },
            b'>' => match n1 {
                Some(b'=') => (Op::Ge, 2),
                Some(b'>') => (Op::Other, 2),
                _ => (Op::Gt, 1),
            },
            b'!' if n1 == Some(b'=') => (Op::Ne, 2),
            b'|' if n1 == Some(b'|') => (Op::OrOr, 2),
            b'&' if n1 == Some(b'&') => (Op::AndAnd, 2),
            b':' if n1 == Some(b'=') => (Op::Assign, 2),
            b'+' => (Op::Plus, 1),
            b'-' => match (n1, n2) {
                (Some(b'>'), Some(b'>')) => (Op::Other, 3),
                (Some(b'>'), _) => (Op::Other, 2),
                _ => (Op::Minus, 1),
            },
            _ => (Op::Other, 1),
        };
        self.pos += len;
        T::Op(op)
    }
}

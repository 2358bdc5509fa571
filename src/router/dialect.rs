//! How MariaDB will read the bytes of a statement on one connection: the `sql_mode` flags
//! that change the lexer (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`, the foreign grammars
//! `ORACLE` / `MSSQL`), the connection's `character_set_client` (which bytes may follow a
//! multi-byte lead byte, which bytes are whitespace or identifier bytes), and the server
//! version that decides whether a `/*!NNNNN … */` comment is code or a comment.
//!
//! The scanner ([`super::key`]) reads a statement under one [`Dialect`]; the session keeps
//! the dialect of each backend connection (read from the server at connect, after a pool
//! reset and after any statement that may change it) and routes only when the statement
//! reads the same on the connection that runs it.

/// A client character set, as far as the lexer is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Charset {
    /// utf8mb3 / utf8mb4: every byte of a multi-byte character is 0x80 or above, and
    /// MariaDB reads a valid non-ASCII character outside quotes as an identifier character.
    Utf8,
    /// A multi-byte character set whose trail bytes may be ASCII (0x40–0x7E, so a
    /// backslash or a backtick can be the second byte of a character): sjis, cp932, gbk,
    /// big5. Inside quotes the scanner skips whole characters as MariaDB's `my_ismbchar`
    /// does; outside quotes any non-ASCII byte makes the statement unreadable.
    AsciiTrail(MbTable),
    /// A single-byte character set (latin1, cp1251, koi8r…): inside quotes bytes are read
    /// one by one; outside quotes a byte of 0x80 or above is an identifier character if
    /// MariaDB reads it as one (the bitmap, bit `b - 0x80`, learnt from MariaDB by
    /// `scripts/gen-charset-idents`), and otherwise — whitespace or punctuation to
    /// MariaDB (latin1 0xA0) — makes the statement unreadable.
    SingleByte(&'static [u8; 16]),
    /// Any other character set (the ASCII-safe multi-byte ones: ujis, euckr…): inside
    /// quotes bytes are read one by one, outside quotes a non-ASCII byte makes the
    /// statement unreadable.
    Other,
}

impl Charset {
    /// Whether MariaDB reads byte `b` (0x80 or above) outside quotes as an identifier
    /// character in this character set (UTF-8's are checked as whole characters).
    #[inline]
    pub fn ident_byte(self, b: u8) -> bool {
        match self {
            Charset::SingleByte(map) => {
                let i = usize::from(b.wrapping_sub(0x80));
                b >= 0x80 && map.get(i / 8).is_some_and(|m| m & (1 << (i % 8)) != 0)
            }
            _ => false,
        }
    }
}

/// Lead and trail byte ranges of a multi-byte character set with ASCII trail bytes
/// (MariaDB's `ismbchar_*` in `strings/ctype-{sjis,cp932,gbk,big5}.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MbTable {
    /// sjis and cp932: lead 0x81–0x9F, 0xE0–0xFC; trail 0x40–0x7E, 0x80–0xFC.
    Sjis,
    /// gbk: lead 0x81–0xFE; trail 0x40–0x7E, 0x80–0xFE.
    Gbk,
    /// big5: lead 0xA1–0xF9; trail 0x40–0x7E, 0xA1–0xFE.
    Big5,
}

impl MbTable {
    /// Length of the character starting with `lead, trail` (2 for a valid pair, else 1).
    #[inline]
    pub fn char_len(self, lead: u8, trail: Option<u8>) -> usize {
        let Some(t) = trail else { return 1 };
        let ok = match self {
            MbTable::Sjis => {
                matches!(lead, 0x81..=0x9F | 0xE0..=0xFC) && matches!(t, 0x40..=0x7E | 0x80..=0xFC)
            }
            MbTable::Gbk => matches!(lead, 0x81..=0xFE) && matches!(t, 0x40..=0x7E | 0x80..=0xFE),
            MbTable::Big5 => matches!(lead, 0xA1..=0xF9) && matches!(t, 0x40..=0x7E | 0xA1..=0xFE),
        };
        if ok {
            2
        } else {
            1
        }
    }
}

impl Charset {
    /// The class of a `character_set_client` name as MariaDB reports it.
    pub fn from_name(name: &str) -> Charset {
        match name.trim().to_ascii_lowercase().as_str() {
            "utf8" | "utf8mb3" | "utf8mb4" => Charset::Utf8,
            "sjis" | "cp932" => Charset::AsciiTrail(MbTable::Sjis),
            "gbk" => Charset::AsciiTrail(MbTable::Gbk),
            "big5" => Charset::AsciiTrail(MbTable::Big5),
            name => super::charset_idents::IDENT_BYTES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Charset::Other, |(_, map)| Charset::SingleByte(map)),
        }
    }
}

/// Everything about a connection that decides how MariaDB lexes a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dialect {
    /// A backslash escapes the next byte inside quotes (no `NO_BACKSLASH_ESCAPES`).
    pub backslash_escapes: bool,
    /// `"…"` is an identifier, not a string (`ANSI_QUOTES`).
    pub ansi_quotes: bool,
    /// `sql_mode` holds ORACLE or MSSQL: MariaDB parses with another grammar, which the
    /// scanner does not follow (every statement that needs its key is refused).
    pub foreign_grammar: bool,
    /// The connection's `character_set_client`.
    pub charset: Charset,
    /// The server's version as MariaDB's `MYSQL_VERSION_ID` (10.11.6 → 101106): the
    /// threshold of `/*!NNNNN … */` comments.
    pub version: u32,
}

impl Default for Dialect {
    /// MariaDB's defaults: backslash escapes, `"` quotes strings, utf8mb4, version 10.11.0.
    fn default() -> Self {
        Dialect {
            backslash_escapes: true,
            ansi_quotes: false,
            foreign_grammar: false,
            charset: Charset::Utf8,
            version: 101100,
        }
    }
}

impl Dialect {
    /// The dialect of a connection from its `@@SESSION.sql_mode`,
    /// `@@SESSION.character_set_client` and server version string.
    pub fn from_server(sql_mode: &str, charset: &str, server_version: &str) -> Dialect {
        let mut d = Dialect {
            charset: Charset::from_name(charset),
            version: version_id(server_version),
            ..Dialect::default()
        };
        d.apply_sql_mode(sql_mode);
        d
    }

    /// Sets the `sql_mode` flags from the comma-separated names MariaDB reports.
    pub fn apply_sql_mode(&mut self, sql_mode: &str) {
        self.backslash_escapes = true;
        self.ansi_quotes = false;
        self.foreign_grammar = false;
        for flag in sql_mode.split(',') {
            match flag.trim().to_ascii_uppercase().as_str() {
                "NO_BACKSLASH_ESCAPES" => self.backslash_escapes = false,
                "ANSI_QUOTES" => self.ansi_quotes = true,
                "ORACLE" | "MSSQL" => self.foreign_grammar = true,
                _ => {}
            }
        }
    }
}

/// MariaDB's `MYSQL_VERSION_ID` of a version string (`10.11.6-MariaDB-0+deb12u1` →
/// 101106; a MySQL-compatible prefix `5.5.5-10.11.6-MariaDB` is skipped). 0 when it
/// cannot be read: then no versioned comment counts as code, and statements with one are
/// refused as unreadable rather than guessed.
pub fn version_id(version: &str) -> u32 {
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(major)), Some(Some(minor)), Some(Some(patch)))
            if major < 100 && minor < 100 && patch < 100 =>
        {
            major * 10000 + minor * 100 + patch
        }
        _ => 0,
    }
}

/// Whether a `SET` statement's text may change the dialect of its connection (it names
/// `sql_mode`, NAMES, or a character set variable); the session then reads the dialect
/// back from the server.
pub fn may_change_dialect(sql: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 3] = [b"sql_mode", b"char", b"names"];
    NEEDLES.iter().any(|n| super::contains_ignore_case(sql, n))
}

/// The statement that reads a connection's dialect back: its answer is one row of
/// `@@SESSION.sql_mode` and `@@SESSION.character_set_client`.
pub const DIALECT_QUERY: &[u8] = b"\x03SELECT @@SESSION.sql_mode, @@SESSION.character_set_client";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids() {
        assert_eq!(version_id("10.11.6-MariaDB-0+deb12u1"), 101106);
        assert_eq!(version_id("5.5.5-10.11.14-MariaDB-log"), 101114);
        assert_eq!(version_id("8.0.36"), 80036);
        assert_eq!(version_id("garbage"), 0);
        assert_eq!(version_id(""), 0);
    }

    #[test]
    fn sql_mode_flags() {
        let d = Dialect::from_server(
            "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES,ANSI_QUOTES",
            "utf8mb4",
            "10.11.6-MariaDB",
        );
        assert!(!d.backslash_escapes && d.ansi_quotes && !d.foreign_grammar);
        let d = Dialect::from_server("PIPES_AS_CONCAT,ORACLE", "sjis", "10.11.6");
        assert!(d.backslash_escapes && !d.ansi_quotes && d.foreign_grammar);
        assert_eq!(d.charset, Charset::AsciiTrail(MbTable::Sjis));
        let latin1 = Dialect::from_server("", "latin1", "x").charset;
        assert!(matches!(latin1, Charset::SingleByte(_)));
        // latin1: é (0xE9) is a letter, the no-break space (0xA0) and × (0xD7) are not.
        assert!(latin1.ident_byte(0xe9) && !latin1.ident_byte(0xa0) && !latin1.ident_byte(0xd7));
        assert!(
            !latin1.ident_byte(b'a'),
            "ASCII is the lexer's own business"
        );
        let koi8r = Dialect::from_server("", "koi8r", "x").charset;
        assert!(koi8r.ident_byte(0xf4) && !koi8r.ident_byte(0x80));
        assert_eq!(
            Dialect::from_server("", "ujis", "x").charset,
            Charset::Other
        );
    }

    #[test]
    fn dialect_changing_statements() {
        assert!(may_change_dialect(b"SET sql_mode = ''"));
        assert!(may_change_dialect(b"set NAMES sjis"));
        assert!(may_change_dialect(b"SET CHARACTER SET big5"));
        assert!(may_change_dialect(
            b"SET @@session.Character_Set_Client = 1"
        ));
        assert!(may_change_dialect(b"SET CHARSET gbk"));
        assert!(!may_change_dialect(b"SET @a = 1"));
        assert!(!may_change_dialect(b"SET autocommit = 0"));
    }

    #[test]
    fn multibyte_pairs() {
        assert_eq!(MbTable::Sjis.char_len(0x95, Some(0x5C)), 2);
        assert_eq!(MbTable::Sjis.char_len(0x95, Some(0x27)), 1);
        assert_eq!(MbTable::Sjis.char_len(0xA0, Some(0x5C)), 1);
        assert_eq!(MbTable::Gbk.char_len(0x81, Some(0x5C)), 2);
        assert_eq!(MbTable::Big5.char_len(0xA4, Some(0x5C)), 2);
        assert_eq!(MbTable::Big5.char_len(0x81, Some(0x5C)), 1);
        assert_eq!(MbTable::Big5.char_len(0xA4, None), 1);
    }
}

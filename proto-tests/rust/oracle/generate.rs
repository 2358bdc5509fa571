//! The seeded case generator of the oracle test. Every case mixes a real key of one user
//! with the key of a user on the other shard, hidden where MariaDB — in some sql_mode,
//! client character set or reading of a versioned comment — does or does not read it; the
//! oracle needs no idea which reading is right, MariaDB decides. Cases depend only on the
//! seed, never on outcomes, so a seed replays exactly.
//!
//! Templates mark their slots `<t>` (table), `<m>` (this case's body marker), `<a>` and
//! `<b>` (the two users' keys), `<c>` (the key column), `<u>` (a user) and `<v>` (a value
//! such as a mode or a character set); [`fill`] replaces them.

use super::{Case, Param, TABLES, USER_NAMES};

/// xorshift64*: a failure reproduces from its seed, without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// Concatenates byte-ish pieces (`&str`, `String`, `&[u8]`, `Vec<u8>`) into SQL bytes.
macro_rules! sql {
    ($($part:expr),* $(,)?) => {{
        let mut v: Vec<u8> = Vec::new();
        $( v.extend_from_slice(AsRef::<[u8]>::as_ref(&$part)); )*
        v
    }};
}

/// `template` with every `<x>` marker listed in `fills` replaced by its bytes.
pub fn fill(template: &[u8], fills: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 32);
    let mut i = 0;
    'bytes: while i < template.len() {
        for (marker, value) in fills {
            if template[i..].starts_with(marker.as_bytes()) {
                out.extend_from_slice(value);
                i += marker.len();
                continue 'bytes;
            }
        }
        out.push(template[i]);
        i += 1;
    }
    out
}

/// [`fill`] for text templates and values.
fn fill_str(template: &str, fills: &[(&str, &str)]) -> String {
    let fills: Vec<(&str, &[u8])> = fills.iter().map(|(m, v)| (*m, v.as_bytes())).collect();
    String::from_utf8(fill(template.as_bytes(), &fills)).unwrap()
}

/// The generator's categories (the first element of what [`Gen::next_case`] returns).
pub const CATEGORIES: [&str; 13] = [
    "comments",
    "quoting",
    "sql_mode",
    "charset",
    "key_forms",
    "batches",
    "dynamic",
    "hints",
    "moves",
    "reads",
    "prepared",
    "long_data",
    "load_data",
];

/// Versions of `/*!NNNNN … */` comments around the server's 10.11 (101119): MariaDB runs
/// those below 50700 and from 100000 up to its own version, skips 50700..=99999 (MySQL's)
/// and later ones; fewer than 5 digits are no version at all (`/*!1*/` is the code `1`),
/// and a 7th digit is code.
const VERSIONS: [&str; 14] = [
    "", "1", "12", "5000", "32302", "50100", "50700", "80000", "99999", "100000", "101119",
    "101120", "999999", "1011190",
];

/// Versions of MariaDB-only `/*M!NNNNNN … */` comments (run up to the server's version).
const MARIADB_VERSIONS: [&str; 6] = ["50100", "80000", "100000", "101119", "101120", "999999"];

/// Starts of line comments and of things that only look like one: `--` needs a space or
/// a control character after it (0x7F counts; 0xA0 is a space in latin1 only).
const LINE_OPENERS: [&[u8]; 12] = [
    b"-- ", b"--\t", b"--\x7f", b"--\x01", b"--\x0b", b"--\r", b"--\xa0", b"--x", b"#", b"-- -",
    b"--\x0c", b"---",
];

/// Escapes that end a string's quote in one reading and not in another: backslash (not
/// with NO_BACKSLASH_ESCAPES), doubled quotes, and multibyte characters whose trail byte is
/// 0x5C (sjis, cp932, gbk, big5).
const ESCAPES: [&[u8]; 9] = [
    b"\\", b"\\\\", b"''", b"\x95\\", b"\xa4\\", b"\x81\\", b"\xe0\\", b"\xa0\\", b"\\\\\\",
];

/// Client character sets (several with 0x5C trail bytes).
const CHARSETS: [&str; 8] = [
    "sjis", "cp932", "gbk", "big5", "latin1", "utf8mb4", "binary", "ascii",
];

/// sql_mode values that change how MariaDB reads strings, quotes and `||`.
const MODES: [&str; 11] = [
    "",
    "NO_BACKSLASH_ESCAPES",
    "ANSI_QUOTES",
    "ANSI",
    "PIPES_AS_CONCAT",
    "ORACLE",
    "MSSQL",
    "TRADITIONAL",
    "NO_BACKSLASH_ESCAPES,ANSI_QUOTES",
    "IGNORE_SPACE",
    "NO_BACKSLASH_ESCAPES,PIPES_AS_CONCAT",
];

/// Spellings of a key value `<u>` that MariaDB converts to the integer (or not).
const KEY_FORMS: [&str; 27] = [
    "'<u>'",
    "' <u>'",
    "'<u> '",
    "'\x0b<u>'",
    "'\t<u>'",
    "'\n<u>'",
    "'+<u>'",
    "'<u>.0'",
    "'<u>e0'",
    "'0<u>'",
    "'00<u>'",
    "<u>.0",
    "+<u>",
    "<u>e0",
    "0<u>",
    "\"<u>\"",
    "_latin1'<u>'",
    "_binary'<u>'",
    "N'<u>'",
    "CAST('<u>' AS UNSIGNED)",
    "<u>+0",
    "(<u>)",
    "'<u>.4'",
    "<u>.4",
    "- -<u>",
    "'<u>'+0",
    "<u> e0",
];

/// Spellings of a key as string-parameter text.
const KEY_TEXTS: [&str; 14] = [
    "<u>", "<u>", " <u>", "<u> ", "+<u>", "<u>.0", "<u>e0", "\t<u>", "\x0b<u>", "0<u>", "<u>.4",
    "<u>abc", "<u>.5", "\n<u>",
];

/// WHERE conditions on `<a>` with `<b>` where it may or may not count.
const CONDITIONS: [&str; 27] = [
    "<c> = <a>",
    "<c> = <a>",
    "<a> = <c>",
    "<c> IN (<a>)",
    "<c> IN (<a>, <b>)",
    "<c> = <a> AND body LIKE 'c%'",
    "<c> = <a> OR <c> = <b>",
    "<c> = <a> OR body LIKE 'c%'",
    "(<c> = <a>)",
    "<c> = <a> || <c> = <b>",
    "NOT (<c> <> <a>)",
    "<c> <=> <a>",
    "<c> = <a> AND 1 OR <c> = <b>",
    "<c> = <a> AND TRUE",
    "<c> = <a> OR FALSE",
    "<c> = <a> XOR <c> = <b>",
    "<c> BETWEEN <a> AND <a>",
    "<c> = <a> AND <c> = <b>",
    "<c> = <a> OR <c> = <b> AND 0",
    "<c> = <b> AND 0 OR <c> = <a>",
    "<c> = (SELECT <b>)",
    "<c> = <a> - <a> + <b>",
    "<c> = IF(1, <b>, <a>)",
    "<c> = CASE WHEN 1 THEN <b> ELSE <a> END",
    "<c> = <a> OR 1",
    "<c> = <a> AND <c> IN (SELECT <b>)",
    "<c> = <a> LIMIT 1",
];

/// The seeded case generator (see the module header).
pub struct Gen {
    rng: Rng,
    /// Cases generated so far (the number of the last one).
    pub n: u64,
}

impl Gen {
    /// A generator; equal seeds give equal cases.
    pub fn new(seed: u64) -> Self {
        let seed = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        Gen {
            rng: Rng(seed),
            n: 0,
        }
    }

    /// The next case and its category.
    pub fn next_case(&mut self) -> (&'static str, Case) {
        self.n += 1;
        let category = self.rng.pick(&CATEGORIES);
        let mut case = match category {
            "comments" => self.comments(),
            "quoting" => self.quoting(),
            "sql_mode" => self.sql_mode(),
            "charset" => self.charset(),
            "key_forms" => self.key_forms(),
            "batches" => self.batches(),
            "dynamic" => self.dynamic(),
            "hints" => self.hints(),
            "moves" => self.moves(),
            "reads" => self.reads(),
            "prepared" => self.prepared(),
            "long_data" => self.long_data(),
            _ => self.load_data(),
        };
        self.season(&mut case);
        (category, case)
    }

    // ---- pieces ----

    /// Two users on different shards, in random order, as placeholders (`{A2}`, `{B}`).
    fn pair(&mut self) -> (String, String) {
        let first = self.rng.below(2);
        let a = self.rng.pick(&USER_NAMES[first]);
        let b = self.rng.pick(&USER_NAMES[1 - first]);
        (format!("{{{a}}}"), format!("{{{b}}}"))
    }

    fn table(&mut self) -> &'static str {
        self.rng.pick(&TABLES)
    }

    /// A body marker unique to this case.
    fn marker(&self) -> String {
        format!("m{}", self.n)
    }

    /// A spelling of the key value `user`: mostly plain, else one MariaDB converts.
    fn key(&mut self, user: &str) -> Vec<u8> {
        if self.rng.chance(40) {
            return user.as_bytes().to_vec();
        }
        let form = self.rng.pick(&KEY_FORMS);
        fill_str(form, &[("<u>", user)]).into_bytes()
    }

    /// The key column, plain or qualified, quoted, commented around the dot.
    fn key_column(&mut self, table: &str) -> Vec<u8> {
        if self.rng.chance(50) {
            return b"userid".to_vec();
        }
        let form = self.rng.pick(&[
            "`userid`",
            "USERID",
            "UserId",
            "<t>.userid",
            "<t> . userid",
            "`<t>`.`userid`",
            "`<t>` . `userid`",
            "{db}.<t>.userid",
            "{db} . <t> . userid",
            "<t>/**/./**/userid",
            "<t>.`userid`",
            "<t>\n.\nuserid",
        ]);
        fill_str(form, &[("<t>", table)]).into_bytes()
    }

    /// The table name, plain or qualified with the database.
    fn table_ref(&mut self, table: &str) -> Vec<u8> {
        if self.rng.chance(50) {
            return table.as_bytes().to_vec();
        }
        let form = self.rng.pick(&[
            "`<t>`",
            "{db}.<t>",
            "{db} . <t>",
            "`{db}`.`<t>`",
            "`{db}` . `<t>`",
            "{db}/**/.<t>",
            "{db}./**/<t>",
            "{db}\n.\n<t>",
            "`{db}`.<t>",
            "{db}.`<t>`",
        ]);
        fill_str(form, &[("<t>", table)]).into_bytes()
    }

    /// An opener of a versioned executable comment (closed by `*/`).
    fn versioned_opener(&mut self) -> String {
        if self.rng.chance(30) {
            format!("/*M!{}", self.rng.pick(&MARIADB_VERSIONS))
        } else {
            format!("/*!{}", self.rng.pick(&VERSIONS))
        }
    }

    /// `inner` inside a random kind of comment — some of which MariaDB executes, some
    /// not, some not comments at all; line comments end with a newline.
    fn comment(&mut self, inner: &[u8]) -> Vec<u8> {
        match self.rng.below(10) {
            0 => sql!("/*", inner, "*/"),
            1 => sql!("/* ", inner, " */"),
            2 | 3 => sql!(self.versioned_opener(), " ", inner, " */"),
            4 => sql!(self.versioned_opener(), inner, "*/"),
            5 => sql!("-- ", inner, "\n"),
            6 => sql!(self.rng.pick(&LINE_OPENERS), inner, "\n"),
            7 => sql!("#", inner, "\n"),
            8 => sql!("/*/", inner, "*/"),
            _ => sql!("/* /* */ ", inner, " /* */"),
        }
    }

    /// The gap between two tokens: usually a blank, sometimes other whitespace or a
    /// comment holding the key of `decoy`.
    fn sp(&mut self, decoy: &str) -> Vec<u8> {
        if !self.rng.chance(25) {
            return b" ".to_vec();
        }
        if self.rng.chance(20) {
            let blanks: [&[u8]; 6] = [b"\t", b"\n", b"\r\n", b"/**/", b"\x0b", b"\x0c"];
            return self.rng.pick(&blanks).to_vec();
        }
        let inner = self.rng.pick(&[
            "userid = <b>",
            "(<b>, 'x'),",
            "OR userid = <b>",
            "userid=<b>",
            "<b>",
            "userid = <b> AND",
            ", userid = <b>",
        ]);
        let comment = self.comment(fill_str(inner, &[("<b>", decoy)]).as_bytes());
        sql!(" ", comment, " ")
    }

    /// A WHERE condition on column `col` keyed by `a`, with `b` where it may count.
    fn condition(&mut self, col: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
        let shape = self.rng.pick(&CONDITIONS);
        fill(shape.as_bytes(), &[("<c>", col), ("<a>", a), ("<b>", b)])
    }

    /// A statement keyed by the expression `key` (INSERT, UPDATE, DELETE, SELECT…).
    fn keyed_statement(&mut self, table: &str, key: &[u8], marker: &str) -> Vec<u8> {
        let t = if self.rng.chance(30) {
            self.table_ref(table)
        } else {
            table.as_bytes().to_vec()
        };
        let c = if self.rng.chance(30) {
            self.key_column(table)
        } else {
            b"userid".to_vec()
        };
        let insert = if self.rng.chance(15) {
            "INSERT IGNORE"
        } else {
            "INSERT"
        };
        let template = self.rng.pick(&[
            "<i> INTO <t> (userid, body) VALUES (<a>, '<m>')",
            "<i> INTO <t> (userid, body) VALUES (<a>, '<m>')",
            "<i> INTO <t> (body, userid) VALUES ('<m>', <a>)",
            "<i> INTO <t> SET <c> = <a>, body = '<m>'",
            "UPDATE <t> SET body = '<m>' WHERE <c> = <a>",
            "DELETE FROM <t> WHERE <c> = <a>",
            "SELECT userid, body FROM <t> WHERE <c> = <a>",
            "REPLACE INTO <t> (userid, body) VALUES (<a>, '<m>')",
            "INSERT INTO <t> (userid, body) SELECT userid, '<m>' FROM <n> WHERE <c> = <a>",
        ]);
        fill(
            template.as_bytes(),
            &[
                ("<i>", insert.as_bytes()),
                ("<t>", &t),
                ("<n>", table.as_bytes()),
                ("<c>", &c),
                ("<a>", key),
                ("<m>", marker.as_bytes()),
            ],
        )
    }

    /// A statement without a key (MariaDB touches or reads every user's rows).
    fn keyless_statement(&mut self, table: &str, marker: &str, user: &str) -> Vec<u8> {
        let t = self.table_ref(table);
        let template = self.rng.pick(&[
            "DELETE FROM <t>",
            "UPDATE <t> SET body = '<m>'",
            "SELECT userid, body FROM <t>",
            "INSERT INTO <t> (userid, body) SELECT <u>, '<m>'",
            "SELECT * FROM <t> WHERE body LIKE 'c%'",
        ]);
        fill(
            template.as_bytes(),
            &[
                ("<t>", &t),
                ("<m>", marker.as_bytes()),
                ("<u>", user.as_bytes()),
            ],
        )
    }

    /// A string smuggle: the string `<q><m><e><q>` ends at its last quote in one reading
    /// and runs on in the other, so the statement is keyed by `a` in one and `b` in the
    /// other.
    fn smuggle(&mut self, esc: &[u8], quote: &str, table: &str, a: &str, b: &str) -> Vec<u8> {
        let template = self.rng.pick(&[
            "INSERT INTO <t> (body, userid) VALUES (<q><m><e><q>, <a>) -- <q>, <b>)",
            "INSERT INTO <t> (body, userid) VALUES (<q><m><e><q>, <a>) -- <q>, <b>)",
            "UPDATE <t> SET body = <q><m><e><q> WHERE userid = <a> -- <q> WHERE userid = <b>",
            "DELETE FROM <t> WHERE body <> <q><m><e><q> AND userid = <a> -- <q> AND userid = <b>",
            "SELECT userid, body FROM <t> WHERE body <> <q><m><e><q> AND userid = <a> -- <q> AND userid = <b>",
            "INSERT INTO <t> SET body = <q><m><e><q>, userid = <a> -- <q>, userid = <b>",
        ]);
        let m = self.marker();
        fill(
            template.as_bytes(),
            &[
                ("<t>", table.as_bytes()),
                ("<q>", quote.as_bytes()),
                ("<m>", m.as_bytes()),
                ("<e>", esc),
                ("<a>", a.as_bytes()),
                ("<b>", b.as_bytes()),
            ],
        )
    }

    /// An identifier smuggle: an alias quoted with `quote` holding a backslash (which
    /// escapes nothing inside identifiers), then the real WHERE and, hidden, a decoy one.
    fn alias_smuggle(&mut self, quote: &str, table: &str, a: &str, b: &str) -> Vec<u8> {
        let template = if self.rng.chance(50) {
            "UPDATE <t> AS <q>p\\<q> SET body = '<m>' WHERE userid = <a> -- <q> WHERE userid = <b>"
        } else {
            "SELECT userid, body FROM <t> AS <q>p\\<q> WHERE userid = <a> -- <q> WHERE userid = <b>"
        };
        let m = self.marker();
        let fills = [
            ("<t>", table),
            ("<q>", quote),
            ("<m>", &m),
            ("<a>", a),
            ("<b>", b),
        ];
        fill_str(template, &fills).into_bytes()
    }

    fn mode_setup(&mut self, mode: &str) -> String {
        let form = self.rng.pick(&[
            "SET sql_mode = '<v>'",
            "SET SESSION sql_mode = '<v>'",
            "SET @@sql_mode = '<v>'",
            "SET @@session.sql_mode = '<v>'",
            "SET LOCAL sql_mode = '<v>'",
            "SET sql_mode := '<v>'",
            "SET @x = 1, sql_mode = '<v>'",
            "SET /* mode */ sql_mode = '<v>'",
            "SET sql_mode = CONCAT(@@sql_mode, ',<v>')",
            "set SQL_MODE='<v>'",
            "SET sql_mode = DEFAULT",
            "SET sql_mode = \"<v>\"",
        ]);
        fill_str(form, &[("<v>", mode)])
    }

    fn charset_setup(&mut self, charset: &str) -> String {
        let form = self.rng.pick(&[
            "SET NAMES <v>",
            "SET NAMES '<v>'",
            "SET CHARACTER SET <v>",
            "SET character_set_client = <v>",
            "SET @@character_set_client = '<v>'",
            "SET NAMES <v> COLLATE <v>_bin",
            "SET SESSION character_set_client = '<v>'",
        ]);
        fill_str(form, &[("<v>", charset)])
    }

    fn pin_setup(&mut self, user: &str) -> String {
        let form = self.rng.pick(&[
            "SET @dbrouter_userid = <u>",
            "SET @dbrouter_userid = '<u>'",
            "SET @DBROUTER_USERID=<u>",
            "SET @dbrouter_userid := <u>",
            "SET @`dbrouter_userid` = <u>",
            "SET @'dbrouter_userid' = <u>",
            "SET @dbrouter_userid = <u>, @x = 1",
            "SET @x = 1, @dbrouter_userid = <u>",
        ]);
        fill_str(form, &[("<u>", user)])
    }

    fn hint(&mut self, user: &str) -> String {
        let form = self.rng.pick(&[
            "/* userid=<u> */ ",
            "/*userid=<u>*/ ",
            "/* userid = <u> */ ",
            "/* USERID=<u> */ ",
            "/* userid='<u>' */ ",
            "/*+ userid=<u> */ ",
            "-- userid=<u>\n",
            "# userid=<u>\n",
            "/*!99999 userid=<u> */ ",
            "/* userid=<u> */\n",
            " /* userid=<u> */ ",
        ]);
        fill_str(form, &[("<u>", user)])
    }

    /// Random session state on top of a case: sql_mode, character set, a transaction.
    fn season(&mut self, case: &mut Case) {
        if self.rng.chance(12) {
            let mode = self.rng.pick(&MODES);
            let setup = self.mode_setup(mode);
            case.setup.insert(0, setup);
        }
        if self.rng.chance(10) {
            let charset = self.rng.pick(&CHARSETS);
            let setup = self.charset_setup(charset);
            case.setup.insert(0, setup);
        }
        if self.rng.chance(4) {
            let tx = self
                .rng
                .pick(&["BEGIN", "START TRANSACTION", "SET autocommit = 0"]);
            case.setup.push(tx.into());
        }
    }

    // ---- categories ----

    /// Comments of every kind, executed or not, hiding a key or a row.
    fn comments(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let sql = match self.rng.below(8) {
            0 => sql!(
                "INSERT INTO ",
                t,
                " (userid, body) VALUES ",
                self.versioned_opener(),
                " (",
                a,
                ", '*/ (",
                b,
                ", \"",
                m,
                "\") -- ') */"
            ),
            1 => {
                let key = sql!(self.versioned_opener(), " ", a, " + 0 * */ ", b);
                self.keyed_statement(t, &key, &m)
            }
            2 => {
                let hidden = self.comment(format!(", ({b}, '{m}')").as_bytes());
                sql!(
                    "INSERT INTO ",
                    t,
                    " (userid, body) VALUES (",
                    a,
                    ", '",
                    m,
                    "')",
                    hidden
                )
            }
            3 => {
                let hidden = self.comment(format!(" OR userid = {b}").as_bytes());
                let template = self.rng.pick(&[
                    "DELETE FROM <t> WHERE userid = ",
                    "UPDATE <t> SET body = '<m>' WHERE userid = ",
                    "SELECT userid, body FROM <t> WHERE userid = ",
                ]);
                let start = fill_str(template, &[("<t>", t), ("<m>", &m)]);
                sql!(start, a, hidden)
            }
            4 => {
                let digits = self.rng.pick(&["1", "12", "123", "0", "5000"]);
                let key = sql!("/*!", digits, "*/+", a);
                self.keyed_statement(t, &key, &m)
            }
            5 => self.line_comment_smuggle(t, &a, &b, &m),
            6 => sql!(
                "INSERT INTO ",
                t,
                " (userid, body) VALUES (",
                a,
                ", '",
                m,
                "') ",
                self.versioned_opener(),
                " /* x */ , (",
                b,
                ", '",
                m,
                "') */"
            ),
            _ => self.noisy_statement(t, &a, &b, &m),
        };
        Case::query(&[], &sql)
    }

    /// A line comment whose rest of line opens a string when it is not a comment:
    /// keyed by `b` (next line) if it is one, by `a` if not.
    fn line_comment_smuggle(&mut self, t: &str, a: &str, b: &str, m: &str) -> Vec<u8> {
        let opener = self.rng.pick(&LINE_OPENERS);
        sql!(
            "INSERT INTO ",
            t,
            " (userid, body) VALUES ",
            opener,
            " (",
            a,
            ", '\n(",
            b,
            ", '",
            m,
            "') -- ')"
        )
    }

    /// A plain keyed statement with random gaps (comments, odd whitespace) between all
    /// its tokens, including around the dot of a qualified table name and before the
    /// statement (where a comment is a hint).
    fn noisy_statement(&mut self, t: &str, a: &str, b: &str, m: &str) -> Vec<u8> {
        let body = format!("'{m}'");
        let table: Vec<&str> = if self.rng.chance(40) {
            vec!["{db}", ".", t]
        } else {
            vec![t]
        };
        let mut tokens: Vec<&str> = Vec::new();
        match self.rng.below(4) {
            0 => {
                tokens.extend(["INSERT", "INTO"]);
                tokens.extend(&table);
                tokens.extend([
                    "(", "userid", ",", "body", ")", "VALUES", "(", a, ",", &body, ")",
                ]);
            }
            1 => {
                tokens.push("UPDATE");
                tokens.extend(&table);
                tokens.extend(["SET", "body", "=", &body, "WHERE", "userid", "=", a]);
            }
            2 => {
                tokens.extend(["DELETE", "FROM"]);
                tokens.extend(&table);
                tokens.extend(["WHERE", "userid", "=", a]);
            }
            _ => {
                tokens.extend(["SELECT", "userid", ",", "body", "FROM"]);
                tokens.extend(&table);
                tokens.extend(["WHERE", "userid", "=", a]);
            }
        }
        let mut out = if self.rng.chance(30) {
            self.sp(b)
        } else {
            Vec::new()
        };
        for (i, token) in tokens.iter().enumerate() {
            if i > 0 {
                out.extend(self.sp(b));
            }
            out.extend_from_slice(token.as_bytes());
        }
        if self.rng.chance(30) {
            out.extend(self.sp(b));
        }
        out
    }

    /// Escaped and doubled quotes, `"…"` strings, backticks, qualified names.
    fn quoting(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let sql = match self.rng.below(7) {
            0 => {
                let string = self.rng.pick(&[
                    "'it\\'s userid = <b>'",
                    "'it''s userid = <b>'",
                    "\"it\\\"s userid = <b>\"",
                    "\"it\"\"s userid = <b>\"",
                    "'\\\\' OR userid = <b> -- '",
                    "'x\\\\'",
                    "'userid = <b>'",
                ]);
                let string = fill_str(string, &[("<b>", &b)]);
                sql!("UPDATE ", t, " SET body = ", string, " WHERE userid = ", a)
            }
            1 => {
                let escapes: [&[u8]; 5] = [b"\\", b"\\\\", b"''", b"\\\\\\", b"\"\""];
                let esc = self.rng.pick(&escapes);
                let quote = self.rng.pick(&["'", "\""]);
                self.smuggle(esc, quote, t, &a, &b)
            }
            2 => self.alias_smuggle("`", t, &a, &b),
            3 => self.alias_smuggle("\"", t, &a, &b),
            4 => {
                let table_ref = self.table_ref(t);
                let col = self.key_column(t);
                match self.rng.below(3) {
                    0 => sql!(
                        "UPDATE ",
                        table_ref,
                        " SET body = '",
                        m,
                        "' WHERE ",
                        col,
                        " = ",
                        a
                    ),
                    1 => sql!("DELETE FROM ", table_ref, " WHERE ", col, " = ", a),
                    _ => sql!(
                        "SELECT userid, body FROM ",
                        table_ref,
                        " WHERE ",
                        col,
                        " = ",
                        a
                    ),
                }
            }
            5 => sql!(
                "SELECT userid AS `userid = ",
                b,
                "`, body AS `a``b` FROM ",
                t,
                " WHERE userid = ",
                a
            ),
            _ => {
                let quote = self.rng.pick(&["'", "\""]);
                sql!(
                    "DELETE FROM ",
                    t,
                    " WHERE userid = ",
                    a,
                    " AND body <> ",
                    quote,
                    "userid = ",
                    b,
                    quote
                )
            }
        };
        Case::query(&[], &sql)
    }

    /// A `SET sql_mode` first (in its many spellings), or `SET STATEMENT … FOR`, then a
    /// statement whose reading depends on the mode.
    fn sql_mode(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let mode = self.rng.pick(&MODES);
        let setup = self.mode_setup(mode);
        let statement = match self.rng.below(4) {
            0 => {
                let quote = self.rng.pick(&["'", "\""]);
                self.smuggle(b"\\", quote, t, &a, &b)
            }
            1 => self.alias_smuggle("\"", t, &a, &b),
            2 => {
                let m = self.marker();
                let template = self.rng.pick(&[
                    "DELETE FROM <t> WHERE userid = <a> || userid = <b>",
                    "UPDATE <t> SET body = '<m>' WHERE userid = <a> || userid = <b>",
                    "SELECT userid, body FROM <t> WHERE userid = <a> || userid = <b>",
                    "UPDATE <t> SET body = '<m>' || userid = <b> WHERE userid = <a>",
                ]);
                let fills = [("<t>", t), ("<m>", &m), ("<a>", &a), ("<b>", &b)];
                fill_str(template, &fills).into_bytes()
            }
            _ => {
                let inner = self.smuggle(b"\\", "'", t, &a, &b);
                let statement = sql!("SET STATEMENT sql_mode='", mode, "' FOR ", inner);
                return Case::query(&[], &statement);
            }
        };
        Case::query(&[setup.as_str()], &statement)
    }

    /// A client character set first, then multibyte characters with a 0x5C trail byte
    /// in strings, or latin1's 0xA0 (a space there) in code.
    fn charset(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let charset = self.rng.pick(&CHARSETS);
        let setup = self.charset_setup(charset);
        let statement = match self.rng.below(4) {
            0 | 1 => {
                let esc = self.rng.pick(&ESCAPES);
                self.smuggle(esc, "'", t, &a, &b)
            }
            2 => {
                let templates: [&[u8]; 7] = [
                    b"UPDATE <t> SET body = '<m>',\xa0userid = <b> WHERE userid = <a>",
                    b"UPDATE <t> SET body = '<m>', userid = <b>\xa0WHERE userid = <a>",
                    b"INSERT INTO <t> (body,\xa0userid) VALUES ('<m>', <a>)",
                    b"SELECT userid, body FROM <t> WHERE\xa0userid = <a>",
                    b"DELETE FROM <t> WHERE userid = <a>\xa0OR\xa0userid = <b>",
                    b"DELETE FROM <t> WHERE userid = <a> --\xa0OR userid = <b>\n",
                    b"UPDATE <t> SET body = '<m>' WHERE userid = <a>\xa0--\xa0OR userid = <b>\n",
                ];
                let template = self.rng.pick(&templates);
                let fills: [(&str, &[u8]); 4] = [
                    ("<t>", t.as_bytes()),
                    ("<m>", m.as_bytes()),
                    ("<a>", a.as_bytes()),
                    ("<b>", b.as_bytes()),
                ];
                fill(template, &fills)
            }
            _ => self.line_comment_smuggle(t, &a, &b, &m),
        };
        Case::query(&[setup.as_str()], &statement)
    }

    /// Keys spelled in ways MariaDB converts: quoted, padded, signed, decimal, exponent,
    /// introducers, garbage after digits, beyond 2^64.
    fn key_forms(&mut self) -> Case {
        let (a, _) = self.pair();
        let t = self.table();
        let m = self.marker();
        let key = if self.rng.chance(25) {
            let odd = self.rng.pick(&[
                "'<u>abc'", "''", "{HUGE}", "'{HUGE}'", "-1", "'-<u>'", "'<u>.5'", "<u>.5",
                "'<u>'+1", "' '", "'abc'", "0xff", "NULL",
            ]);
            fill_str(odd, &[("<u>", &a)]).into_bytes()
        } else {
            self.key(&a)
        };
        let statement = if self.rng.chance(30) {
            sql!(
                "INSERT IGNORE INTO ",
                t,
                " (userid, body) VALUES (",
                key,
                ", '",
                m,
                "')"
            )
        } else {
            self.keyed_statement(t, &key, &m)
        };
        Case::query(&[], &statement)
    }

    /// Multi-statement batches: SET, USE, BEGIN, the pin or a plain SELECT before a
    /// keyless or other user's statement, two statements of different users.
    fn batches(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let prefix = self.rng.pick(&[
            "SET @a=1; ",
            "USE {db}; ",
            "SELECT 1; ",
            "DO 1; ",
            "SET @dbrouter_userid=<a>; ",
            "BEGIN; ",
            "SET sql_mode=''; ",
            "SET NAMES utf8mb4; ",
            "/* userid=<a> */ SELECT 1; ",
            "",
            "SET autocommit=1; ",
            "SET @dbrouter_userid = NULL; ",
        ]);
        let pinned = prefix.contains("userid=<a>");
        let prefix = fill_str(prefix, &[("<a>", &a)]);
        let (body, keyless) = match self.rng.below(4) {
            0 => (self.keyless_statement(t, &m, &b), true),
            1 => (self.keyed_statement(t, b.as_bytes(), &m), false),
            2 => {
                let rest = self.keyless_statement(t, &m, &a);
                (
                    sql!("DELETE FROM ", t, " WHERE userid = ", a, "; ", rest),
                    true,
                )
            }
            _ => {
                let first = self.keyed_statement(t, a.as_bytes(), &m);
                let second = self.keyed_statement(t, b.as_bytes(), &m);
                (sql!(first, "; ", second), false)
            }
        };
        let suffix = self
            .rng
            .pick(&["", ";", "; COMMIT", "; SELECT 1", " ; -- end", "; DO 2"]);
        let case = Case::query(&[], &sql!(prefix, body, suffix));
        if pinned && keyless {
            case.pinned_to(&a[1..a.len() - 1])
        } else {
            case
        }
    }

    /// EXECUTE IMMEDIATE and PREPARE … FROM: the key is inside a string the router
    /// cannot read, sometimes with another user's key visible outside it.
    fn dynamic(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let inner = if self.rng.chance(75) {
            self.keyed_statement(t, b.as_bytes(), &m)
        } else {
            self.keyless_statement(t, &m, &b)
        };
        let s = String::from_utf8_lossy(&inner).replace('\'', "''");
        let (setup, statement): (Option<String>, String) = match self.rng.below(8) {
            0 => (None, format!("EXECUTE IMMEDIATE '{s}'")),
            1 => (None, format!("PREPARE s FROM '{s}'; EXECUTE s")),
            2 => (Some(format!("PREPARE s FROM '{s}'")), "EXECUTE s".into()),
            3 => (
                None,
                format!("EXECUTE IMMEDIATE CONCAT('DELETE FROM {t} WHERE userid = ', {b})"),
            ),
            4 => (
                None,
                format!(
                    "EXECUTE IMMEDIATE 'INSERT INTO {t} (userid, body) VALUES (?, ''{m}'')' USING {b}"
                ),
            ),
            5 => (None, format!("/* userid={a} */ EXECUTE IMMEDIATE '{s}'")),
            6 => (
                Some(format!("SET @q = '{s}'")),
                "PREPARE s FROM @q; EXECUTE s".into(),
            ),
            _ => (None, format!("EXECUTE IMMEDIATE '{s}' -- userid = {a}")),
        };
        let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
        Case::query(&setup, statement.as_bytes())
    }

    /// Hints and the session pin naming one user while the statement names another; or
    /// pinning a keyless statement (then it may touch anything on that user's shard).
    fn hints(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let name = a[1..a.len() - 1].to_string();
        match self.rng.below(5) {
            0 => {
                let hint = self.hint(&a);
                let statement = self.keyed_statement(t, b.as_bytes(), &m);
                Case::query(&[], &sql!(hint, statement))
            }
            1 => {
                let pin = self.pin_setup(&a);
                let statement = self.keyed_statement(t, b.as_bytes(), &m);
                Case::query(&[pin.as_str()], &statement)
            }
            2 => {
                let pin = self.pin_setup(&a);
                let statement = format!("INSERT INTO {t} (userid, body) SELECT {b}, '{m}'");
                Case::query(&[pin.as_str()], statement.as_bytes())
            }
            3 => {
                let hint = self.hint(&a);
                let statement = self.keyless_statement(t, &m, &a);
                Case::query(&[], &sql!(hint, statement)).pinned_to(&name)
            }
            _ => {
                let pin = self.pin_setup(&a);
                let statement = self.keyless_statement(t, &m, &a);
                Case::query(&[pin.as_str()], &statement).pinned_to(&name)
            }
        }
    }

    /// UPDATEs that move a row to another user (the assignment hidden by 0xA0, comments,
    /// qualification) and UPDATE / DELETE that reach other users' rows through OR.
    fn moves(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let mut setup = None;
        let c = if self.rng.chance(20) {
            setup = Some("SET NAMES latin1");
            b"\xa0userid".to_vec()
        } else if self.rng.chance(20) {
            let spellings: [&[u8]; 3] = [b"/**/userid", b"userid/**/", b"`userid`"];
            self.rng.pick(&spellings).to_vec()
        } else {
            self.key_column(t)
        };
        let decoy = self.rng.pick(&[
            "userid = <b>",
            "body LIKE 'c%'",
            "1",
            "TRUE",
            "userid > 0",
            "userid IN (<b>)",
            "userid <> <a>",
        ]);
        let decoy = fill_str(decoy, &[("<a>", &a), ("<b>", &b)]);
        let template = self.rng.pick(&[
            "UPDATE <t> SET body = '<m>', <c> = <b> WHERE userid = <a>",
            "UPDATE <t> SET <c> = <b>, body = '<m>' WHERE userid = <a>",
            "UPDATE <t> SET body = '<m>', <c> = userid + <b> - <a> WHERE userid = <a>",
            "DELETE FROM <t> WHERE userid = <a> OR <d>",
            "UPDATE <t> SET body = '<m>' WHERE userid = <a> OR <d>",
            "UPDATE <t> SET body = '<m>', <c> = <b> WHERE <w>",
        ]);
        let condition = self.condition(b"userid", a.as_bytes(), b.as_bytes());
        let statement = fill(
            template.as_bytes(),
            &[
                ("<t>", t.as_bytes()),
                ("<m>", m.as_bytes()),
                ("<c>", &c),
                ("<a>", a.as_bytes()),
                ("<b>", b.as_bytes()),
                ("<d>", decoy.as_bytes()),
                ("<w>", &condition),
            ],
        );
        let setup: Vec<&str> = setup.into_iter().collect();
        Case::query(&setup, &statement)
    }

    /// SELECTs (whose rows tell which shard answered): conditions, joins, UNION.
    fn reads(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let col = self.key_column(t);
        let key = self.key(&a);
        let condition = self.condition(&col, &key, b.as_bytes());
        let table_ref = self.table_ref(t);
        let other = if self.rng.chance(50) { b.as_str() } else { "" };
        let template = self.rng.pick(&[
            "SELECT userid, body FROM <t> WHERE <w>",
            "SELECT userid, body FROM <t> WHERE <w>",
            "SELECT * FROM <t> WHERE <w> FOR UPDATE",
            "SELECT p.userid, p.body FROM posts p JOIN messages m ON m.userid = p.userid WHERE p.userid = <a>",
            "SELECT userid, body FROM posts WHERE userid = <a> UNION SELECT userid, body FROM messages",
            "SELECT userid, body FROM posts WHERE userid = <a> UNION ALL SELECT userid, body FROM messages WHERE userid = <o>",
        ]);
        let statement = fill(
            template.as_bytes(),
            &[
                ("<t>", &table_ref),
                ("<w>", &condition),
                ("<a>", a.as_bytes()),
                ("<o>", other.as_bytes()),
            ],
        );
        Case::query(&[], &statement)
    }

    /// A prepared statement's text and, per `?`, whether it is a key (else a body).
    fn prepared_shape(&mut self, t: &str, a: &str, b: &str, reads: bool) -> (String, Vec<bool>) {
        let mut shapes = vec![
            (
                "INSERT INTO <t> (userid, body) VALUES (?, ?)",
                vec![true, false],
            ),
            (
                "INSERT INTO <t> (body, userid) VALUES (?, ?)",
                vec![false, true],
            ),
            (
                "INSERT INTO <t> SET body = ?, userid = ?",
                vec![false, true],
            ),
            (
                "INSERT IGNORE INTO <t> (userid, body) VALUES (?, ?)",
                vec![true, false],
            ),
            (
                "UPDATE <t> SET body = ? WHERE userid = ?",
                vec![false, true],
            ),
            ("DELETE FROM <t> WHERE userid = ?", vec![true]),
            (
                "UPDATE <t> SET body = ?, userid = ? WHERE userid = <a>",
                vec![false, true],
            ),
            (
                "DELETE FROM <t> WHERE userid = ? OR userid = <b>",
                vec![true],
            ),
            (
                "INSERT INTO <t> (userid, body) VALUES (?, ?), (?, ?)",
                vec![true, false, true, false],
            ),
        ];
        if reads {
            shapes.push(("SELECT userid, body FROM <t> WHERE userid = ?", vec![true]));
            shapes.push((
                "SELECT userid, body FROM <t> WHERE userid IN (?, ?)",
                vec![true, true],
            ));
        }
        let (sql, keys) = shapes.swap_remove(self.rng.below(shapes.len()));
        (fill_str(sql, &[("<t>", t), ("<a>", a), ("<b>", b)]), keys)
    }

    /// A spelling of `user` as a key parameter of any type.
    fn key_param(&mut self, user: &str) -> Param {
        match self.rng.below(12) {
            0 => Param::Double(user.into()),
            1 => Param::Double(format!("{user}.4")),
            2 => Param::Int(user.into()),
            3 => Param::UInt(user.into()),
            _ => Param::Text(self.key_text(user)),
        }
    }

    /// A spelling of `user` as string-parameter text.
    fn key_text(&mut self, user: &str) -> String {
        let form = self.rng.pick(&KEY_TEXTS);
        fill_str(form, &[("<u>", user)])
    }

    /// The user of each key parameter: `a` first, later ones sometimes `b`.
    fn key_user<'u>(&mut self, index: usize, a: &'u str, b: &'u str) -> &'u str {
        if index > 0 && self.rng.chance(40) {
            b
        } else {
            a
        }
    }

    /// Prepared statements with the key parameter as padded or signed text, decimal,
    /// double, signed or unsigned integer.
    fn prepared(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let (sql, keys) = self.prepared_shape(t, &a, &b, true);
        let mut params = Vec::new();
        for (i, is_key) in keys.into_iter().enumerate() {
            params.push(if is_key {
                let user = self.key_user(i, &a, &b);
                self.key_param(user)
            } else {
                Param::Text(m.clone())
            });
        }
        Case::prepared(&[], &sql, params)
    }

    /// Prepared statements whose parameters all come as COM_STMT_SEND_LONG_DATA.
    fn long_data(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let (sql, keys) = self.prepared_shape(t, &a, &b, false);
        let mut params = Vec::new();
        for (i, is_key) in keys.into_iter().enumerate() {
            params.push(if is_key {
                let user = self.key_user(i, &a, &b);
                self.key_text(user)
            } else {
                m.clone()
            });
        }
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        Case::long_data(&[], &sql, &params)
    }

    /// LOAD DATA LOCAL INFILE into qualified names, with rows of one user or of both.
    fn load_data(&mut self) -> Case {
        let (a, b) = self.pair();
        let t = self.table();
        let m = self.marker();
        let table_ref = self.table_ref(t);
        let verb = self.rng.pick(&["", "IGNORE ", "REPLACE "]);
        let hint = if self.rng.chance(30) {
            format!("/* userid={a} */ ")
        } else {
            String::new()
        };
        let columns = self.rng.pick(&[
            " (userid, body)",
            " (userid, body)",
            " (@u, body) SET userid = <a>",
        ]);
        let file = self.rng.pick(&[
            "<a>\t<m>a\n<b>\t<m>b\n",
            "<a>\t<m>\n",
            "<b>\t<m>\n",
            "<a>\t<m>a\n<a>\t<m>b\n",
        ]);
        let fills = [
            ("<a>", a.as_str()),
            ("<b>", b.as_str()),
            ("<m>", m.as_str()),
        ];
        let sql = sql!(
            hint,
            "LOAD DATA LOCAL INFILE 'oracle.tsv' ",
            verb,
            "INTO TABLE ",
            table_ref,
            fill_str(columns, &fills)
        );
        Case::load_data(&[], &sql, fill_str(file, &fills).as_bytes())
    }
}

//! Keywords: the words the scanner acts on, found by a perfect-hash lookup that needs no
//! allocation and no lower-casing.

use super::*;
// ---------------------------------------------------------------------------------------
// Keywords: the words the scanner follows, found through a collision-free multiplicative
// hash of (first two bytes, last two bytes, length) into a 512-entry table, then confirmed
// by a case-insensitive comparison (`| 0x20` folds ASCII case and maps no other identifier
// byte to a letter). A unit test checks that every keyword is found.

pub(in crate::router) const KW_HASH_BITS: u32 = 9;
pub(in crate::router) const KW_HASH_MUL: u64 = 0x8c14_c6ae_fe69_2a81;
pub(in crate::router) const NO_KW: u8 = u8::MAX;

/// Bucket of a word of 2 to 16 bytes.
#[inline]
pub(in crate::router) const fn kw_hash(
    first: u8,
    second: u8,
    before_last: u8,
    last: u8,
    len: usize,
) -> usize {
    let key = (first | 0x20) as u64
        | ((second | 0x20) as u64) << 8
        | ((last | 0x20) as u64) << 16
        | ((before_last | 0x20) as u64) << 24
        | (len as u64) << 32;
    (key.wrapping_mul(KW_HASH_MUL) >> (64 - KW_HASH_BITS)) as usize
}

macro_rules! keywords {
    ($($name:ident = $text:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(in crate::router) enum Kw { $($name,)* }

        pub(in crate::router) const KW_ALL: &[Kw] = &[$(Kw::$name,)*];
        pub(in crate::router) const KW_TEXT: &[&[u8]] = &[$($text,)*];
    };
}

pub(in crate::router) const fn kw_table() -> [u8; 1 << KW_HASH_BITS] {
    let mut table = [NO_KW; 1 << KW_HASH_BITS];
    let mut i = 0;
    while i < KW_TEXT.len() {
        let w = KW_TEXT[i];
        let n = w.len();
        table[kw_hash(w[0], w[1], w[n - 2], w[n - 1], n)] = i as u8;
        i += 1;
    }
    table
}

pub(in crate::router) static KW_TABLE: [u8; 1 << KW_HASH_BITS] = kw_table();

/// A byte's bit in the masks below (case-folded; any byte has one).
#[inline(always)]
pub(in crate::router) const fn kw_bit(b: u8) -> u32 {
    1 << ((b | 0x20).wrapping_sub(b'a') & 31)
}

/// For each length, the bits of the keywords' first bytes and of their last bytes: most
/// names fail this cheap test before the hash.
pub(in crate::router) const fn kw_ends() -> [(u32, u32); 17] {
    let mut t = [(0, 0); 17];
    let mut i = 0;
    while i < KW_TEXT.len() {
        let w = KW_TEXT[i];
        let n = w.len();
        t[n].0 |= kw_bit(w[0]);
        t[n].1 |= kw_bit(w[n - 1]);
        i += 1;
    }
    t
}

pub(in crate::router) static KW_ENDS: [(u32, u32); 17] = kw_ends();

/// A 2- to 16-byte word as two overlapping little-endian integers (its first and last 2, 4
/// or 8 bytes), every byte `| 0x20`: two words of the same length give the same pair
/// exactly when every byte is equal after `| 0x20` (which folds ASCII case and maps no
/// other identifier byte to a letter).
#[inline(always)]
pub(in crate::router) fn kw_fold(w: &[u8]) -> Option<(u64, u64)> {
    pub(in crate::router) const FOLD: u64 = 0x2020_2020_2020_2020;
    let n = w.len();
    let (a, b) = if n >= 8 {
        (
            u64::from_le_bytes(w.get(..8)?.try_into().ok()?),
            u64::from_le_bytes(w.get(n - 8..)?.try_into().ok()?),
        )
    } else if n >= 4 {
        (
            u64::from(u32::from_le_bytes(w.get(..4)?.try_into().ok()?)),
            u64::from(u32::from_le_bytes(w.get(n - 4..)?.try_into().ok()?)),
        )
    } else {
        (
            u64::from(u16::from_le_bytes(w.get(..2)?.try_into().ok()?)),
            u64::from(u16::from_le_bytes(
                w.get(n.checked_sub(2)?..)?.try_into().ok()?,
            )),
        )
    };
    Some((a | FOLD, b | FOLD))
}

/// [`kw_fold`] of every keyword, with its length.
pub(in crate::router) const fn kw_folded() -> [(usize, u64, u64); KW_TEXT.len()] {
    let mut t = [(0, 0, 0); KW_TEXT.len()];
    let mut i = 0;
    while i < KW_TEXT.len() {
        let w = KW_TEXT[i];
        let n = w.len();
        let width = if n >= 8 {
            8
        } else if n >= 4 {
            4
        } else {
            2
        };
        let (mut a, mut b) = (0x2020_2020_2020_2020u64, 0x2020_2020_2020_2020u64);
        let mut j = 0;
        while j < width {
            a |= ((w[j] | 0x20) as u64) << (8 * j);
            b |= ((w[n - width + j] | 0x20) as u64) << (8 * j);
            j += 1;
        }
        t[i] = (n, a, b);
        i += 1;
    }
    t
}

pub(in crate::router) static KW_FOLDED: [(usize, u64, u64); KW_TEXT.len()] = kw_folded();

/// A keyword's identity, case-insensitively; None for any other word.
#[inline(always)]
pub(in crate::router) fn keyword(w: &[u8]) -> Option<Kw> {
    let n = w.len();
    let (&[first, second, ..], &[.., before_last, last]) = (w, w) else {
        return None;
    };
    // Most names fail this cheap test, before the hash.
    let &(firsts, lasts) = KW_ENDS.get(n)?;
    if firsts & kw_bit(first) == 0 || lasts & kw_bit(last) == 0 {
        return None;
    }
    let slot = usize::from(*KW_TABLE.get(kw_hash(first, second, before_last, last, n))?);
    let &(len, a, b) = KW_FOLDED.get(slot)?;
    if len == n && kw_fold(w)? == (a, b) {
        KW_ALL.get(slot).copied()
    } else {
        None
    }
}

keywords! {
    Select = b"select", Insert = b"insert", Replace = b"replace", Update = b"update",
    Delete = b"delete", Set = b"set", Show = b"show", Use = b"use", Begin = b"begin",
    Start = b"start", Transaction = b"transaction", Commit = b"commit",
    Rollback = b"rollback", Savepoint = b"savepoint", Release = b"release",
    Create = b"create", Alter = b"alter", Drop = b"drop", Truncate = b"truncate",
    Rename = b"rename", Call = b"call", Do = b"do", Load = b"load", Lock = b"lock",
    Unlock = b"unlock", Explain = b"explain", Describe = b"describe", Desc = b"desc",
    Kill = b"kill", With = b"with", Table = b"table", Tables = b"tables",
    Values = b"values", Value = b"value", From = b"from", Join = b"join",
    StraightJoin = b"straight_join", Inner = b"inner", Cross = b"cross", Left = b"left",
    Right = b"right", Natural = b"natural", Outer = b"outer", On = b"on",
    Using = b"using", Where = b"where", Having = b"having", Group = b"group",
    Order = b"order", Limit = b"limit", Window = b"window", Procedure = b"procedure",
    For = b"for", Into = b"into", Union = b"union", Intersect = b"intersect",
    Except = b"except", Returning = b"returning", Fetch = b"fetch", As = b"as",
    To = b"to", LowPriority = b"low_priority", HighPriority = b"high_priority",
    Delayed = b"delayed", Ignore = b"ignore", Quick = b"quick",
    Partition = b"partition", Force = b"force", If = b"if", Exists = b"exists",
    Temporary = b"temporary", Lateral = b"lateral", And = b"and", Or = b"or",
    Xor = b"xor", Not = b"not", In = b"in", Is = b"is", Like = b"like",
    Between = b"between", Regexp = b"regexp", Rlike = b"rlike", Sounds = b"sounds",
    Member = b"member", Null = b"null", True = b"true", False = b"false",
    Default = b"default", Case = b"case", End = b"end",
}

impl Kw {
    /// The statement kind a first keyword announces.
    pub(in crate::router) fn statement_kind(self) -> StatementKind {
        use StatementKind as K;
        match self {
            Kw::Select | Kw::With | Kw::Table | Kw::Values => K::Select,
            Kw::Insert => K::Insert,
            Kw::Replace => K::Replace,
            Kw::Update => K::Update,
            Kw::Delete => K::Delete,
            Kw::Set => K::Set,
            Kw::Show => K::Show,
            Kw::Use => K::Use,
            Kw::Begin => K::Begin,
            Kw::Commit => K::Commit,
            Kw::Rollback => K::Rollback,
            Kw::Savepoint | Kw::Release => K::Savepoint,
            Kw::Create | Kw::Alter | Kw::Drop | Kw::Truncate | Kw::Rename => K::Ddl,
            Kw::Call => K::Call,
            Kw::Do => K::Do,
            Kw::Load => K::Load,
            Kw::Lock | Kw::Unlock => K::Lock,
            Kw::Explain | Kw::Describe | Kw::Desc => K::Explain,
            Kw::Kill => K::Kill,
            _ => K::Other,
        }
    }

    /// Words skipped where a table name is expected (INSERT IGNORE INTO, IF NOT EXISTS …).
    pub(in crate::router) fn table_modifier(self) -> bool {
        matches!(
            self,
            Kw::LowPriority
                | Kw::HighPriority
                | Kw::Delayed
                | Kw::Ignore
                | Kw::Quick
                | Kw::Into
                | Kw::If
                | Kw::Not
                | Kw::Exists
                | Kw::Temporary
                | Kw::Table
                | Kw::Tables
                | Kw::Lateral
        )
    }

    /// Words that keep their meaning where a table name is expected; any other keyword
    /// there (`value`, `status`, `end` …) is taken as the table's name.
    pub(in crate::router) fn structural(self) -> bool {
        matches!(
            self,
            Kw::Select
                | Kw::With
                | Kw::Values
                | Kw::Value
                | Kw::Set
                | Kw::Where
                | Kw::On
                | Kw::Using
                | Kw::Join
                | Kw::StraightJoin
                | Kw::Inner
                | Kw::Cross
                | Kw::Left
                | Kw::Right
                | Kw::Natural
                | Kw::Outer
                | Kw::Group
                | Kw::Order
                | Kw::Limit
                | Kw::Having
                | Kw::For
                | Kw::Lock
                | Kw::Union
                | Kw::Intersect
                | Kw::Except
                | Kw::Window
                | Kw::Partition
                | Kw::As
                | Kw::Returning
                | Kw::Fetch
                | Kw::Procedure
        )
    }
}

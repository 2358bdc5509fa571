//! The statement's tokens as the shard-key lexer reads them, for the few fixed statement
//! shapes read outside the scanner (the session pin, `USE`, `SHOW DBROUTER …`, BEGIN /
//! COMMIT / savepoint forms, `SET TRANSACTION`): one lexer, so comments, quotes, version
//! comments and the connection's dialect are read the same way everywhere. Allocates
//! nothing.

use super::lexer::{Lexer, Op, T};
use crate::router::dialect::Dialect;

/// One token of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word<'a> {
    /// A keyword or an identifier: its text, backticks removed (a qualified name is its
    /// last part).
    Ident(&'a [u8]),
    /// A string literal's content (as written) and whether it holds an escape.
    Str(&'a [u8], bool),
    /// A number, as written.
    Number(&'a [u8]),
    /// A variable (`@name`, `@@session.name`), as written.
    Var(&'a [u8]),
    /// `?`.
    Param,
    /// An operator or punctuation, as written (`=`, `:=`, `,`, `;` …).
    Punct(&'a [u8]),
    /// Text that cannot be read (an unterminated string or comment, or bytes MariaDB may
    /// read differently): the last token.
    Unreadable,
}

impl<'a> Word<'a> {
    /// Whether this is the keyword or identifier `word` (ASCII case-insensitive).
    pub fn is(&self, word: &[u8]) -> bool {
        matches!(self, Word::Ident(w) if w.eq_ignore_ascii_case(word))
    }

    /// Whether this is the punctuation `p`.
    pub fn is_punct(&self, p: &[u8]) -> bool {
        matches!(self, Word::Punct(w) if *w == p)
    }
}

/// The tokens of `sql` as MariaDB reads it under `dialect`, comments and whitespace
/// skipped; ends at the end of the text or after [`Word::Unreadable`].
pub fn words(sql: &[u8], dialect: Dialect) -> Words<'_> {
    Words {
        lexer: Lexer::new(sql, dialect),
        done: u32::try_from(sql.len()).is_err(),
    }
}

/// Iterator of [`words`].
#[derive(Debug, Clone)]
pub struct Words<'a> {
    lexer: Lexer<'a>,
    done: bool,
}

impl<'a> Iterator for Words<'a> {
    type Item = Word<'a>;

    fn next(&mut self) -> Option<Word<'a>> {
        if self.done {
            return None;
        }
        let s = self.lexer.s;
        // Skip to the token's first byte, so that its text can be cut out after it.
        let start = match self.lexer.trivia() {
            Ok(Some(_)) => self.lexer.pos,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(_) => {
                self.done = true;
                return Some(Word::Unreadable);
            }
        };
        let token = self.lexer.next();
        let raw = s.get(start..self.lexer.pos).unwrap_or_default();
        Some(match token {
            T::Kw(_, sp) | T::Name(sp) => Word::Ident(sp.of(s)),
            T::Str(sp, escaped) => Word::Str(sp.of(s), escaped),
            T::Num(_) => Word::Number(raw),
            T::Var => Word::Var(raw),
            T::Param => Word::Param,
            T::Op(Op::Semi) => Word::Punct(b";"),
            T::Op(_) => Word::Punct(raw),
            T::End => {
                self.done = true;
                return None;
            }
            T::Bad => {
                self.done = true;
                Word::Unreadable
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(sql: &[u8]) -> Vec<Word<'_>> {
        words(sql, Dialect::default()).collect()
    }

    #[test]
    fn comments_quotes_and_version_comments_read_as_mariadb_does() {
        assert_eq!(
            all(b"/* c */ SET -- x\n @dbrouter_userid := '42';"),
            vec![
                Word::Ident(b"SET"),
                Word::Var(b"@dbrouter_userid"),
                Word::Punct(b":="),
                Word::Str(b"42", false),
                Word::Punct(b";"),
            ]
        );
        assert_eq!(
            all(b"/*!100000 USE */ `my db`"),
            vec![Word::Ident(b"USE"), Word::Ident(b"my db")]
        );
        assert_eq!(all(b"USE 'x"), vec![Word::Ident(b"USE"), Word::Unreadable]);
        assert_eq!(all(b"  "), vec![]);
    }

    #[test]
    fn ansi_quotes_make_double_quotes_names() {
        let ansi = Dialect {
            ansi_quotes: true,
            ..Dialect::default()
        };
        let w: Vec<_> = words(b"SAVEPOINT \"a\"", ansi).collect();
        assert_eq!(w, vec![Word::Ident(b"SAVEPOINT"), Word::Ident(b"a")]);
        assert_eq!(
            all(b"SAVEPOINT \"a\""),
            vec![Word::Ident(b"SAVEPOINT"), Word::Str(b"a", false)]
        );
    }
}

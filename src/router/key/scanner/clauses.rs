//! Keywords: the statement kind and which clause the current query block is in (tables,
//! a condition, an assignment list, the parts of an INSERT).

use super::*;

impl<'a, 'c, 'o> Scanner<'a, 'c, 'o> {
    pub(in crate::router) fn table(&mut self, name: &'a [u8]) {
        self.out.push_table(name);
        self.tables_named = self.tables_named.saturating_add(1);
        let insert_target = self.depth == 0 && self.is_insert() && !self.ins_table;
        if insert_target {
            self.ins_table = true;
        }
        self.top_mut().clause = if insert_target {
            Clause::InsertTarget
        } else {
            Clause::TablesAfter
        };
    }

    pub(in crate::router) fn start_cond(&mut self, ti: u32, from_on: bool) {
        let key_start = self.out.key_len;
        let f = self.top_mut();
        f.clause = Clause::Cond;
        f.conj = true;
        f.disj = false;
        f.from_on = from_on;
        f.conj_at = ti.wrapping_add(1);
        f.key_start = key_start;
        f.between = 0;
    }

    pub(in crate::router) fn start_assign(&mut self, kind: AssignKind, ti: u32) {
        let f = self.top_mut();
        f.clause = match kind {
            AssignKind::Update => Clause::AssignUpdate,
            AssignKind::InsertSet => Clause::AssignInsertSet,
            AssignKind::OnDuplicate => Clause::AssignOnDuplicate,
        };
        f.conj_at = ti.wrapping_add(1);
    }

    /// An INSERT source other than VALUES/SET (SELECT, TABLE, WITH) is being read.
    pub(in crate::router) fn check_insert_select(&mut self) {
        if self.is_insert()
            && matches!(
                self.frames[0].clause,
                Clause::InsertTarget | Clause::InsertColumnsDone | Clause::InsertPartition
            )
        {
            self.problem(KeyProblem::InsertSelect);
        }
    }

    pub(in crate::router) fn keyword(&mut self, k: Kw, w: &'a [u8], ti: u32) {
        if self.overflow > 0 {
            return;
        }
        let f = *self.top();
        if k == Kw::Temporary
            && self.depth == 0
            && matches!(self.p1.t, T::Kw(Kw::Create | Kw::Drop | Kw::Replace, _))
        {
            self.out.temporary = true;
        }
        if f.kind == FrameKind::Query && f.clause == Clause::TablesExpect && !k.structural() {
            if !k.table_modifier() {
                self.table(w);
            }
            return;
        }
        match k {
            Kw::And => return self.and(ti),
            Kw::Or | Kw::Xor => return self.or(),
            Kw::Between => {
                let f = self.top_mut();
                f.between = f.between.saturating_add(1);
                return;
            }
            Kw::Case => {
                let mut c = Frame::new(FrameKind::Case, Clause::Body, ti, self.out.key_len);
                c.in_cond = f.in_cond_now();
                self.push(c);
                return;
            }
            Kw::End => {
                let ends_value = matches!(
                    self.p1.t,
                    T::Name(_)
                        | T::Num(_)
                        | T::Str(..)
                        | T::Param
                        | T::Var
                        | T::Op(Op::RParen)
                        | T::Kw(Kw::End | Kw::Null | Kw::True | Kw::False, _)
                );
                if f.kind == FrameKind::Case && ends_value {
                    self.depth -= 1;
                }
                return;
            }
            _ => {}
        }
        // A subquery: SELECT/WITH/TABLE right after `(`.
        if self.depth > 0
            && f.open_ti.wrapping_add(1) == ti
            && matches!(k, Kw::Select | Kw::With | Kw::Table)
            && f.kind != FrameKind::Case
        {
            self.check_insert_select();
            let (tables, keys) = (self.tables_named, self.keys_found);
            let f = self.top_mut();
            f.kind = FrameKind::Query;
            f.branch_tables = tables;
            f.branch_keys = keys;
            f.clause = if k == Kw::Table {
                Clause::TablesExpect
            } else {
                Clause::Body
            };
            f.conj = false;
            return;
        }
        if f.kind != FrameKind::Query {
            return;
        }
        if matches!(k, Kw::Union | Kw::Intersect | Kw::Except) {
            // Also after a parenthesised first branch, still at the statement's start.
            self.start_branch();
            self.top_mut().clause = Clause::Body;
            return;
        }
        let depth0 = self.depth == 0;
        if depth0
            && (f.clause == Clause::Start
                || (self.with_pending
                    && matches!(
                        k,
                        Kw::Select | Kw::Insert | Kw::Replace | Kw::Update | Kw::Delete
                    )))
        {
            return self.statement_keyword(k);
        }
        let clause = f.clause;
        let kind = self.kind;
        match k {
            Kw::Select | Kw::With => {
                if depth0 {
                    self.check_insert_select();
                }
                self.top_mut().clause = Clause::Body;
            }
            Kw::From => self.top_mut().clause = Clause::TablesExpect,
            Kw::Join | Kw::StraightJoin
                if clause.is_tables() || (clause == Clause::Cond && f.from_on) =>
            {
                self.top_mut().clause = Clause::TablesExpect;
            }
            Kw::On => match clause {
                Clause::TablesAfter | Clause::TablesAfterAs | Clause::TablesDone => {
                    self.start_cond(ti, true)
                }
                Clause::InsertRows
                | Clause::InsertAlias
                | Clause::InsertColumnsDone
                | Clause::AssignInsertSet
                    if depth0 && self.is_insert() =>
                {
                    self.top_mut().clause = Clause::InsertOnDup
                }
                _ if kind == Some(StatementKind::Ddl) => {
                    self.top_mut().clause = Clause::TablesExpect
                }
                _ => {}
            },
            Kw::Using if clause.is_tables() => {
                self.top_mut().clause = if self.next_is(Op::LParen) {
                    Clause::TablesDone
                } else {
                    Clause::TablesExpect
                };
            }
            Kw::Where | Kw::Having => self.start_cond(ti, false),
            Kw::Group
            | Kw::Order
            | Kw::Limit
            | Kw::Window
            | Kw::Procedure
            | Kw::For
            | Kw::Lock
            | Kw::Returning
            | Kw::Fetch => self.top_mut().clause = Clause::Body,
            Kw::Into => self.top_mut().clause = Clause::Body,
            Kw::Set if depth0 => match (kind, clause) {
                (
                    Some(StatementKind::Update),
                    Clause::TablesExpect
                    | Clause::TablesAfter
                    | Clause::TablesAfterAs
                    | Clause::TablesDone
                    | Clause::Cond,
                ) => self.start_assign(AssignKind::Update, ti),
                (Some(StatementKind::Insert | StatementKind::Replace), Clause::InsertTarget) => {
                    self.start_assign(AssignKind::InsertSet, ti)
                }
                _ => {}
            },
            Kw::Update if depth0 && clause == Clause::InsertOnDup => {
                self.start_assign(AssignKind::OnDuplicate, ti)
            }
            Kw::Values | Kw::Value
                if depth0
                    && self.is_insert()
                    && matches!(clause, Clause::InsertTarget | Clause::InsertColumnsDone) =>
            {
                if !self.ins_cols {
                    self.problem(KeyProblem::InsertWithoutColumns);
                }
                self.top_mut().clause = Clause::InsertRows;
            }
            Kw::Table | Kw::Tables => {
                if depth0 {
                    self.check_insert_select();
                }
                if kind != Some(StatementKind::Show) {
                    self.top_mut().clause = Clause::TablesExpect;
                }
            }
            Kw::Partition if clause == Clause::InsertTarget => {
                self.top_mut().clause = Clause::InsertPartition
            }
            Kw::As => match clause {
                Clause::TablesAfter => self.top_mut().clause = Clause::TablesAfterAs,
                Clause::InsertRows => self.top_mut().clause = Clause::InsertAlias,
                _ => {}
            },
            Kw::To => {
                if kind == Some(StatementKind::Rollback) {
                    self.set_kind(StatementKind::Savepoint);
                } else if kind == Some(StatementKind::Ddl) {
                    self.top_mut().clause = Clause::TablesExpect;
                }
            }
            Kw::Transaction if self.first_kw == Some(Kw::Start) => {
                self.set_kind(StatementKind::Begin)
            }
            _ => {}
        }
    }

    /// The keyword that starts a statement (or its body after EXPLAIN or a WITH clause).
    pub(in crate::router) fn statement_keyword(&mut self, k: Kw) {
        if self.with_pending {
            self.with_pending = false;
            if k != Kw::Select {
                self.set_kind(k.statement_kind());
            }
        }
        let clause = match k {
            Kw::Insert | Kw::Replace => {
                self.ins_n = 0;
                self.ins_cols = false;
                self.ins_table = false;
                Clause::TablesExpect
            }
            Kw::Update | Kw::Table | Kw::Truncate | Kw::Describe | Kw::Desc => Clause::TablesExpect,
            Kw::Explain => Clause::Start,
            Kw::With => {
                self.with_pending = true;
                Clause::Body
            }
            _ => Clause::Body,
        };
        self.top_mut().clause = clause;
    }
}

"""RFC 4515 filters (ldaptor filter objects) -> one SQL predicate per entity, three-valued logic folded.

RFC 4511 evaluates a filter to TRUE, FALSE or Undefined. Each filter compiles to a pair of SQL
predicates ``(t, f)``: where the filter is TRUE and where it is FALSE (Undefined elsewhere); AND, OR and
NOT combine the pairs (NOT swaps them) and constants fold at compile time, so an Undefined branch costs
nothing in SQL. The WHERE clause is ``t``. Every leaf predicate is definite (never SQL NULL).

The matching rules are ``matching.py``'s, row by row (its evaluator decides the entries that are not
rows and the leaves that fold to constants); what only SQL needs:

* names, mail and other strings are compared folded (``fold()``: Python ``str.lower`` on SQLite,
  ``lower()`` on PostgreSQL); empty values count as absent;
* phone numbers (telephoneNumber, homePhone, mobile, pager, facsimileTelephoneNumber): spaces and dashes
  removed in SQL too;
* objectClass, crmEntity, a subtype with options and an attribute the entity lacks: decided at compile
  time by ``matching.item_matches``;
* uid, crmId, entryUUID: the record id; other operational attributes are Undefined in filters;
* an attribute the schema does not know (mozillaNickname is known; icsCalendar, roomNumber are not) is
  Undefined; one the schema knows but this entity lacks is FALSE (absent), as slapd does.

A NUL in a value matches literally: PostgreSQL text cannot hold one, so there a value with a NUL matches
nothing (an ordering filter compares with the value cut at its NUL, which orders the same); on SQLite
equality and ordering compare whole values, and substrings with a NUL go to ``abook_substrings``
(``store/search_index.py``), since LIKE and FTS5 stop reading at a NUL.

Substrings: Thunderbird's ``*rog**`` (empty ``any`` parts) matches like ``*rog*``. On SQLite, in an
indexed field an initial part becomes a range on the folded-value index (``>= 'jo' AND < 'jp'``);
without one, the fragments of three or more characters are looked up in the FTS5 trigram table
(contains-searches ORed or ANDed over one entity merge into one MATCH); a LIKE over the folded value
(wildcards escaped) keeps the answer exact where the index alone is not. On PostgreSQL every substring
is a LIKE on the folded value, served by the pg_trgm GIN index.
"""

from __future__ import annotations

from typing import Any, Union

from ldaptor.protocols import pureldap

from abook.directory.entries import KNOWN, PHONE_ATTRIBUTES, RECORD_CLASSES, EntityView
from abook.directory.matching import (attribute_of, fold, folded_parts, item_matches, normalise_phone, phone_parts,
                                     simple_extensible, substring_parts, text_of)
from abook.store import search_index


class _Const:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


TRUE, FALSE = _Const("TRUE"), _Const("FALSE")


class Match:
    """A not-yet-rendered FTS5 MATCH (SQLite) over one entity: merged across OR/AND before rendering.

    ``columns``/``phrase``: set when the query is one phrase in one column filter (``{cn} : "ann"``), so
    that ORed phrases that are the same merge into one column filter (``{cn sn} : "ann"``, the same rows):
    FTS5 then reads the phrase's doclist once instead of once per column.
    """

    __slots__ = ("query", "columns", "phrase")

    def __init__(self, query: str, columns: tuple[str, ...] = (), phrase: str | None = None) -> None:
        self.query, self.columns, self.phrase = query, columns, phrase


class Sql:
    """A SQL boolean expression with its positional parameters, in placeholder order."""

    __slots__ = ("text", "params")

    def __init__(self, text: str, params: tuple = ()) -> None:
        self.text, self.params = text, params

    def __repr__(self) -> str:
        return f"Sql({self.text!r}, {self.params!r})"


Pred = Union[_Const, Match, Sql]
Pair = tuple[Pred, Pred]  # (true-when, false-when)

UNDEFINED: Pair = (FALSE, FALSE)
#: operational attributes a filter cannot test (Undefined)
_UNFILTERED = frozenset({"entrydn", "createtimestamp", "modifytimestamp", "subschemasubentry", "structuralobjectclass"})


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(initial: str | None, anys: list[str], final: str | None) -> str:
    return (like_escape(initial or "") + "%" + "".join(like_escape(a) + "%" for a in anys)
            + like_escape(final or ""))


# --------------------------------------------------------------------------------------------------------
# Combining predicates with constant folding


def render(p: Pred, ctx: "Compiler") -> Sql:
    if p is TRUE:
        return Sql("1=1")
    if p is FALSE:
        return Sql("1=0")
    if isinstance(p, Match):
        return ctx.render_match(p.query)
    return p  # type: ignore[return-value]


def conj(parts: list[Pred], ctx: "Compiler") -> Pred:
    if any(p is FALSE for p in parts):
        return FALSE
    return _combine([p for p in parts if p is not TRUE], ctx, " AND ", TRUE)


def disj(parts: list[Pred], ctx: "Compiler") -> Pred:
    if any(p is TRUE for p in parts):
        return TRUE
    return _combine([p for p in parts if p is not FALSE], ctx, " OR ", FALSE)


def _combine(parts: list[Pred], ctx: "Compiler", op: str, empty: _Const) -> Pred:
    if not parts:
        return empty
    matches = [p for p in parts if isinstance(p, Match)]
    others = [p for p in parts if not isinstance(p, Match)]
    if len(matches) > 1 and op == " OR ":
        matches = _merge_phrases(matches)
    if len(matches) > 1:
        matches = [Match(op.join(f"({m.query})" for m in matches))]
    merged = matches + others
    if len(merged) == 1:
        return merged[0]
    rendered = [render(p, ctx) for p in merged]
    return Sql("(" + op.join(r.text for r in rendered) + ")", tuple(x for r in rendered for x in r.params))


def _merge_phrases(matches: list[Match]) -> list[Match]:
    """ORed single-phrase matches of the same phrase as one match over the union of their columns."""
    out: list[Match] = []
    by_phrase: dict[str, int] = {}
    for m in matches:
        if m.phrase is None:
            out.append(m)
            continue
        i = by_phrase.get(m.phrase)
        if i is None:
            by_phrase[m.phrase] = len(out)
            out.append(m)
            continue
        columns = out[i].columns + tuple(c for c in m.columns if c not in out[i].columns)
        out[i] = Match("{" + " ".join(columns) + "} : " + m.phrase, columns, m.phrase)
    return out


def negate(p: Pred, ctx: "Compiler") -> Pred:
    if p is TRUE:
        return FALSE
    if p is FALSE:
        return TRUE
    r = render(p, ctx)
    return Sql("NOT " + r.text if r.text.startswith("(") else "NOT (" + r.text + ")", r.params)


# --------------------------------------------------------------------------------------------------------
# The SQL compiler, one per (entity view, dialect)


class Compiler:
    def __init__(self, view: EntityView, dialect: str) -> None:
        self.view = view
        self.dialect = dialect
        self.sqlite = dialect == "sqlite"
        self.ph = "?" if self.sqlite else "%s"
        self._fold = search_index.fold_sql(dialect)
        self._fts = search_index.fts_table(view.entity)
        self._classes = list(RECORD_CLASSES)

    def where(self, f: Any) -> Pred:
        """The predicate selecting the entries for which ``f`` is TRUE (TRUE/FALSE constants folded)."""
        return self.pair(f)[0]

    def sql(self, p: Pred) -> Sql:
        return render(p, self)

    def render_match(self, query: str) -> Sql:
        return Sql(f"{self.view.table.name}.rowid IN (SELECT rowid FROM {self._fts} WHERE {self._fts} MATCH ?)",
                   (query,))

    def pair(self, f: Any) -> Pair:
        if isinstance(f, pureldap.LDAPFilter_and):
            pairs = [self.pair(x) for x in f]
            return conj([p[0] for p in pairs], self), disj([p[1] for p in pairs], self)
        if isinstance(f, pureldap.LDAPFilter_or):
            pairs = [self.pair(x) for x in f]
            return disj([p[0] for p in pairs], self), conj([p[1] for p in pairs], self)
        if isinstance(f, pureldap.LDAPFilter_not):
            t, fl = self.pair(f.value)
            return fl, t
        t = self.leaf(f)
        if t is None:
            return UNDEFINED
        return t, negate(t, self)

    # -- leaves -------------------------------------------------------------------------------------------

    def leaf(self, f: Any) -> Pred | None:
        """TRUE-when predicate of an item filter (definite: FALSE where not TRUE), None if Undefined."""
        base, options, _ = attribute_of(f).partition(";")
        name = KNOWN.get(base.lower())
        if name is None:
            return None
        lname = name.lower()
        if lname in _UNFILTERED:
            return None
        if options:  # a subtype (cn;lang-en) is recognised if its type is; abook holds no tagged values
            return _const(item_matches(f, lname, []))
        if lname == "objectclass":
            return _const(item_matches(f, lname, self._classes))
        if lname == "crmentity":
            return _const(item_matches(f, lname, [self.view.entity]))
        if lname in ("uid", "crmid", "entryuuid"):
            return self._id_leaf(f)
        field = self.view.by_attr.get(lname)
        if field is None:
            return _const(item_matches(f, lname, []))  # known attribute, absent from this entity's entries
        return self._field_leaf(f, field, lname in PHONE_ATTRIBUTES)

    def _like(self, expr: str, pattern: str, raw: str | None = None) -> Sql:
        """``expr LIKE pattern`` (expr folded, pattern folded and escaped).

        On SQLite an ASCII pattern is matched against the unfolded ``raw`` expression instead: SQLite's
        own LIKE ignores ASCII case, which gives the same answer without calling the Python fold per row.
        """
        if self.sqlite:
            if raw is not None and pattern.isascii():
                expr = raw
            return Sql(f"{expr} LIKE ? ESCAPE '\\'", (pattern,))
        return Sql(f"{expr} LIKE %s", (pattern,))

    def _id_leaf(self, f: Any) -> Pred | None:
        col = f"{self.view.table.name}.id"
        if isinstance(f, pureldap.LDAPFilter_present):
            return TRUE
        if isinstance(f, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch)):
            v = fold(text_of(f.assertionValue.value))
            return FALSE if _NUL in v else Sql(f"{col} = {self.ph}", (v,))  # no record id holds a NUL
        if isinstance(f, pureldap.LDAPFilter_substrings):
            raw_parts = substring_parts(f)
            if raw_parts is None:
                return None
            parts = folded_parts(raw_parts)
            return FALSE if _has_nul(*parts) else self._like(col, like_pattern(*parts))
        return None

    def _field_leaf(self, f: Any, field: str, phone: bool) -> Pred | None:
        expr = self.view.field_text(field)
        ph = self.ph
        present: Pred = TRUE if field in ("fullname", "name") else Sql(f"({expr} IS NOT NULL AND {expr} <> '')")
        if isinstance(f, pureldap.LDAPFilter_present):
            return present
        value_expr = f"replace(replace({expr}, ' ', ''), '-', '')" if phone else expr
        folded = f"{self._fold}({value_expr})"
        norm = (lambda v: fold(normalise_phone(v))) if phone else fold
        if isinstance(f, pureldap.LDAPFilter_extensibleMatch):
            if not simple_extensible(f):
                return None
            v = norm(text_of(f.matchValue.value))
            if _NUL in v and not self.sqlite:
                return FALSE
            return conj([present, Sql(f"{folded} = {ph}", (v,))], self)
        if isinstance(f, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch)):
            v = norm(text_of(f.assertionValue.value))
            if not v or (_NUL in v and not self.sqlite):
                return FALSE
            return conj([present, Sql(f"{folded} = {ph}", (v,))], self)
        if isinstance(f, (pureldap.LDAPFilter_greaterOrEqual, pureldap.LDAPFilter_lessOrEqual)):
            if phone:
                return None
            v = fold(text_of(f.assertionValue.value))
            ordered = folded if self.sqlite else f'{folded} COLLATE "C"'
            op = ">=" if isinstance(f, pureldap.LDAPFilter_greaterOrEqual) else "<="
            if _NUL in v and not self.sqlite:
                # for values without a NUL: x >= p + NUL + r exactly when x > p, x <= p + NUL + r when x <= p
                v, op = v[: v.index(_NUL)], (">" if op == ">=" else "<=")
            return conj([present, Sql(f"{ordered} {op} {ph}", (v,))], self)
        if isinstance(f, pureldap.LDAPFilter_substrings):
            raw_parts = substring_parts(f)
            if raw_parts is None:
                return None
            initial, anys, final = raw_parts
            if phone:
                initial, anys, final = phone_parts((initial, anys, final))
            initial, anys, final = folded_parts((initial, anys, final))
            if initial is None and not anys and final is None:
                return present
            if _has_nul(initial, anys, final):
                if not self.sqlite:
                    return FALSE
                return Sql(search_index.substrings_sql(folded, ph),
                           (search_index.substrings_param(initial, anys, final),))
            conditions = self._substring(folded, value_expr, self.view.search_field(field), initial, anys, final)
            if len(conditions) == 1 and isinstance(conditions[0], Match):
                return conditions[0]  # definite on its own: absent and empty values are not in the index
            return conj([present, *conditions], self)
        return None

    def _substring(self, folded: str, raw: str, search_field: str | None, initial: str | None,
                   anys: list[str], final: str | None) -> list[Pred]:
        like = self._like(folded, like_pattern(initial, anys, final), raw)
        if search_field is None or not self.sqlite:
            return [like]
        out: list[Pred] = []
        exact = False
        if initial is not None:
            out.append(Sql(f"{folded} >= ?", (initial,)))
            out.append(Sql(f"{folded} < ?", (initial[:-1] + chr(min(ord(initial[-1]) + 1, 0x10FFFF)),)))
            exact = not anys and final is None
        # a prefix uses its range (exact and selective: "son*" would be a huge trigram list);
        # otherwise the fragments of three or more characters use the trigram index
        long = [] if initial is not None else [p for p in (*anys, final) if p is not None and len(p) >= 3]
        if long:
            if len(long) == 1:
                phrase = _fts_string(long[0])
                out.append(Match(f"{{{search_field}}} : {phrase}", (search_field,), phrase))
            else:
                out.append(Match(" AND ".join(f"{{{search_field}}} : {_fts_string(p)}" for p in long)))
            exact = exact or (initial is None and final is None and len(anys) == 1)
        if not exact:
            out.append(like)
        return out


_NUL = "\x00"


def _has_nul(initial: str | None, anys: list[str], final: str | None) -> bool:
    return _NUL in (initial or "") or _NUL in (final or "") or any(_NUL in a for a in anys)


def _fts_string(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _const(r: bool | None) -> Pred | None:
    if r is None:
        return None
    return TRUE if r else FALSE

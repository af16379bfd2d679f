//! A topic trie of ACL rules, keyed by level. A topic is matched by walking only the branches
//! that can match it (its literal level, `+`, `#`, and any `%c`/`%u` templates), so the cost
//! depends on the topic's depth, not on the number of rules.

use ahash::AHashMap;

use super::template::{Met, Template, Values};
use crate::topic::short_word;

/// The client's values for one walk over a rule list: deny patterns substitute with `deny`
/// (Mosquitto 2.0's textual substitution), allow patterns with `grant` (the stricter rules).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subst<'a> {
    pub(super) deny: Values<'a>,
    pub(super) grant: Values<'a>,
    /// Both substitute the same (the usual case: every value is safe), so a template is met
    /// once for deny and allow rules alike.
    pub(super) same: bool,
}

impl Subst<'_> {
    /// Whether the client id or username holds `+` or `#` (Mosquitto's "dangerous id").
    pub(crate) fn has_wildcard(&self) -> bool {
        self.deny.has_wildcard()
    }
}

impl<'a> Subst<'a> {
    /// For per-user rules, which have no placeholders.
    pub(crate) const NONE: Subst<'static> = Subst {
        deny: Values::NONE,
        grant: Values::NONE,
        same: true,
    };

    pub(crate) fn new(client_id: &'a str, username: Option<&'a str>) -> Subst<'a> {
        let deny = Values::denials(client_id, username);
        let grant = Values::grants(client_id, username);
        Subst {
            deny,
            grant,
            same: deny.same_as(&grant),
        }
    }
}

/// Which rules a walk collects below the templates it went through: a template met with the
/// deny values leads only to deny rules, one met with the grant values only to allow rules.
/// A const parameter of the walk, so the per-user walk (always `BOTH`) pays nothing for it.
type Want = u8;
const BOTH: Want = 0;
const DENY: Want = 1;
const GRANT: Want = 2;
use super::{Access, Decision, Reason, RuleAccess, RuleId};

/// Rule ids kept so that merging is a plain `max` / `min`: `deny` is the id plus one (0 for
/// none), `read` / `write` the id itself (`u32::MAX` for none). An empty terminal merges as a
/// no-op, so nodes hold one without an `Option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Terminal {
    /// The deny Mosquitto would meet first: denies are prepended, so the last in the file.
    deny: u32,
    /// The first rule in file order granting read / write.
    read: u32,
    write: u32,
}

const NO_GRANT: u32 = u32::MAX;
const NO_DENY: u32 = 0;

impl Default for Terminal {
    fn default() -> Self {
        Terminal::EMPTY
    }
}

impl Terminal {
    const EMPTY: Terminal = Terminal {
        deny: NO_DENY,
        read: NO_GRANT,
        write: NO_GRANT,
    };

    fn add(&mut self, access: RuleAccess, id: RuleId) {
        match access {
            RuleAccess::Deny => self.deny = self.deny.max(id.0 + 1),
            RuleAccess::Read => self.read = self.read.min(id.0),
            RuleAccess::Write => self.write = self.write.min(id.0),
            RuleAccess::ReadWrite => {
                self.read = self.read.min(id.0);
                self.write = self.write.min(id.0);
            }
        }
    }

    fn deny(&self) -> Option<RuleId> {
        deny_id(self.deny)
    }

    fn read(&self) -> Option<RuleId> {
        grant_id(self.read)
    }
}

fn deny_id(raw: u32) -> Option<RuleId> {
    raw.checked_sub(1).map(RuleId)
}

fn grant_id(raw: u32) -> Option<RuleId> {
    (raw != NO_GRANT).then_some(RuleId(raw))
}

/// Matches collected during one walk.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Hits(Terminal);

impl Hits {
    #[inline(always)]
    fn add<const WANT: Want>(&mut self, t: &Terminal) {
        let h = &mut self.0;
        if WANT != GRANT {
            h.deny = h.deny.max(t.deny);
        }
        if WANT != DENY {
            h.read = h.read.min(t.read);
            h.write = h.write.min(t.write);
        }
    }

    /// Mosquitto's order inside one rule list: any matching deny decides; then a match whose
    /// access includes the request; otherwise undecided.
    pub(super) fn decide(&self, access: Access) -> Option<Decision> {
        if let Some(id) = self.0.deny() {
            return Some(Decision::deny(Reason::Rule(id)));
        }
        let grant = match access {
            Access::Read => self.0.read,
            Access::Write => self.0.write,
            Access::Subscribe | Access::Unsubscribe => NO_GRANT,
        };
        grant_id(grant).map(|id| Decision::allow(Reason::Rule(id)))
    }
}

fn min_opt(a: Option<RuleId>, b: Option<RuleId>) -> Option<RuleId> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

fn max_opt(a: Option<RuleId>, b: Option<RuleId>) -> Option<RuleId> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

/// A rule list while it is being built; [`Trie::add`] freezes it into the compact form.
///
/// Flat: every node in one vector, linked by index, with the level texts borrowed from the
/// file's text, so building allocates a handful of vectors per list rather than a map and a
/// string per node.
#[derive(Debug)]
pub(super) struct Builder<'t> {
    /// Node 0 is the root.
    nodes: Vec<BuildNode<'t>>,
    /// The literal children of nodes with more than [`BUILD_SCAN_LIMIT`] of them, by parent
    /// and level (narrower nodes are searched along their list of children).
    wide: AHashMap<(u32, &'t str), u32>,
    /// Templated children: the template, the child node, and the parent's next templated
    /// child (in first-appearance order).
    templates: Vec<(Template, u32, u32)>,
}

/// No node: the end of a list of children, or no `+` child.
const NONE: u32 = u32::MAX;

/// While building, nodes up to this many literal children are searched along their list
/// (comparing the [`prefix`] words first); wider ones are indexed in [`Builder::wide`].
const BUILD_SCAN_LIMIT: usize = 32;

#[derive(Debug, Clone, Copy)]
struct BuildNode<'t> {
    /// The level that leads here from the parent, for a literal child, and its [`prefix`].
    key: &'t str,
    prefix: u64,
    /// First literal child and the next literal sibling (a list, newest first).
    first: u32,
    next: u32,
    /// Number of literal children.
    count: u32,
    /// The `+` child.
    plus: u32,
    /// First templated child, in [`Builder::templates`].
    templates: u32,
    terminal: Terminal,
    hash: Terminal,
}

impl BuildNode<'_> {
    const EMPTY: BuildNode<'static> = BuildNode {
        key: "",
        prefix: 0,
        first: NONE,
        next: NONE,
        count: 0,
        plus: NONE,
        templates: NONE,
        terminal: Terminal::EMPTY,
        hash: Terminal::EMPTY,
    };
}

impl Default for Builder<'_> {
    fn default() -> Self {
        let mut nodes = Vec::with_capacity(16);
        nodes.push(BuildNode::EMPTY);
        Builder {
            nodes,
            wide: AHashMap::default(),
            templates: Vec::new(),
        }
    }
}

/// Splits off the first level of a filter: `("a", Some("b/c"))` for `a/b/c`.
fn first_level(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        Some(at) => (s.get(..at).unwrap_or(s), s.get(at + 1..)),
        None => (s, None),
    }
}

impl<'t> Builder<'t> {
    /// Adds a rule. `templated` enables `%c`/`%u` levels (pattern rules only).
    pub(super) fn insert(
        &mut self,
        filter: &'t str,
        templated: bool,
        access: RuleAccess,
        id: RuleId,
    ) {
        let mut node = 0u32;
        let mut rest = Some(filter);
        while let Some(text) = rest {
            let (level, after) = first_level(text);
            rest = after;
            if level == "#" {
                if let Some(n) = self.nodes.get_mut(node as usize) {
                    n.hash.add(access, id);
                }
                return;
            }
            node = if level == "+" {
                self.plus_child(node)
            } else if let Some(template) = templated.then(|| Template::parse(level)).flatten() {
                self.template_child(node, template)
            } else {
                self.literal_child(node, level)
            };
            if rest.is_none() {
                if let Some(n) = self.nodes.get_mut(node as usize) {
                    n.terminal.add(access, id);
                }
            }
        }
    }

    fn node(&self, at: u32) -> &BuildNode<'t> {
        self.nodes.get(at as usize).unwrap_or(&BuildNode::EMPTY)
    }

    fn new_node(&mut self, node: BuildNode<'t>) -> u32 {
        self.nodes.push(node);
        index(self.nodes.len() - 1)
    }

    fn plus_child(&mut self, parent: u32) -> u32 {
        match self.node(parent).plus {
            NONE => {
                let child = self.new_node(BuildNode::EMPTY);
                if let Some(p) = self.nodes.get_mut(parent as usize) {
                    p.plus = child;
                }
                child
            }
            child => child,
        }
    }

    fn template_child(&mut self, parent: u32, template: Template) -> u32 {
        let mut last = NONE;
        let mut at = self.node(parent).templates;
        while let Some((t, child, next)) = self.templates.get(at as usize) {
            if *t == template {
                return *child;
            }
            last = at;
            at = *next;
        }
        let child = self.new_node(BuildNode::EMPTY);
        let entry = index(self.templates.len());
        self.templates.push((template, child, NONE));
        match self.templates.get_mut(last as usize) {
            Some(previous) => previous.2 = entry,
            None => {
                if let Some(p) = self.nodes.get_mut(parent as usize) {
                    p.templates = entry;
                }
            }
        }
        child
    }

    fn literal_child(&mut self, parent: u32, level: &'t str) -> u32 {
        let p = *self.node(parent);
        let word = prefix(level.as_bytes());
        if p.count as usize > BUILD_SCAN_LIMIT {
            if let Some(&child) = self.wide.get(&(parent, level)) {
                return child;
            }
        } else {
            let mut at = p.first;
            while let Some(n) = self.nodes.get(at as usize) {
                if n.prefix == word
                    && n.key.len() == level.len()
                    && (level.len() <= 8 || n.key.get(8..) == level.get(8..))
                {
                    return at;
                }
                at = n.next;
            }
        }
        let child = self.new_node(BuildNode {
            key: level,
            prefix: word,
            next: p.first,
            ..BuildNode::EMPTY
        });
        let count = p.count + 1;
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.first = child;
            p.count = count;
        }
        if count as usize == BUILD_SCAN_LIMIT + 1 {
            // Too wide to search along the list from now on: index every child.
            let mut at = child;
            while let Some(n) = self.nodes.get(at as usize) {
                self.wide.insert((parent, n.key), at);
                at = n.next;
            }
        } else if count as usize > BUILD_SCAN_LIMIT {
            self.wide.insert((parent, level), child);
        }
        child
    }

    /// The literal children of node `at`, as (level, node).
    fn literals(&self, at: u32) -> impl Iterator<Item = (&'t str, u32)> + '_ {
        let mut next = self.node(at).first;
        std::iter::from_fn(move || {
            let n = self.nodes.get(next as usize)?;
            let item = (n.key, next);
            next = n.next;
            Some(item)
        })
    }
}

/// [`Node::flags`]: the node has `#` rules.
const HAS_HASH: u32 = 1;
/// [`Node::flags`]: the node has a `+` child.
const HAS_PLUS: u32 = 2;

/// Index of a node in [`Trie::nodes`]; the root of a rule list.
pub(super) type NodeId = u32;

/// One place in a rule list. Plain indices into the [`Trie`]'s arrays: no allocation per node.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Literal children: `edges[edges .. edges + edge_count]`.
    edges: u32,
    edge_count: u32,
    /// With many children, an open-addressing table of edge indices
    /// (`table[table .. table + table_mask + 1]`); `table_mask == 0` means scan the edges.
    table: u32,
    table_mask: u32,
    /// Templated children: `templates[templates .. templates + template_count]`.
    templates: u32,
    template_count: u32,
    /// The `+` child; 0 for none (node 0 is never a child).
    plus: NodeId,
    /// The deny Mosquitto would meet first among every rule at or below this node (in
    /// [`Terminal::deny`]'s encoding); used when a deny template matches "anything" (see
    /// [`Met::Anything`]).
    subtree_deny: u32,
    /// [`HAS_HASH`] and [`HAS_PLUS`]: what a plain walk must look at besides the literal child.
    flags: u32,
    /// Rules whose filter ends exactly here.
    terminal: Terminal,
    /// Rules whose filter continues with `#` here: they match this level and everything below.
    hash: Terminal,
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    /// The level's first eight bytes, zero-padded: most levels are decided by this alone.
    prefix: u64,
    /// Where the level's text is in `keys`, and its length.
    key: u32,
    key_len: u32,
    node: NodeId,
}

/// The first eight bytes of `text[..len]`, zero-padded, as one word. `text` may go on past
/// the level (the rest of the topic): when eight bytes are there they are loaded at once and
/// masked; a shorter text is loaded with at most two overlapping reads ([`short_word`](crate::topic::short_word)).
#[inline(always)]
fn prefix_in(text: &[u8], len: usize) -> u64 {
    if let Some(head) = text.first_chunk::<8>() {
        let w = u64::from_le_bytes(*head);
        if len >= 8 {
            w
        } else {
            w & ((1u64 << (8 * len)) - 1)
        }
    } else {
        short_word(text.get(..len).unwrap_or(text))
    }
}

/// The first level of `rest` (up to the first `/` or the end): its length and its
/// [`prefix`] word. Eight bytes are looked at once (the "has a zero byte" test on the word
/// XOR `/`), so a level of up to seven bytes costs a handful of instructions.
#[inline(always)]
fn next_level(rest: &[u8]) -> (usize, u64) {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const SLASHES: u64 = u64::from_le_bytes([b'/'; 8]);
    // The lowest flagged byte is exactly the first zero byte (borrows only go upwards).
    let first_slash = |w: u64| {
        let x = w ^ SLASHES;
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    if let Some(head) = rest.first_chunk::<8>() {
        let w = u64::from_le_bytes(*head);
        let zero = first_slash(w);
        if zero != 0 {
            let len = (zero.trailing_zeros() / 8) as usize;
            return (len, w & ((1u64 << (8 * len)) - 1));
        }
        return (long_level(rest), w);
    }
    // Fewer than eight bytes: the padding is zero, never taken for a `/`.
    let w = short_word(rest);
    let zero = first_slash(w) & ((1u64 << (8 * rest.len())) - 1);
    if zero != 0 {
        let len = (zero.trailing_zeros() / 8) as usize;
        (len, w & ((1u64 << (8 * len)) - 1))
    } else {
        (rest.len(), w)
    }
}

/// The length of a level that has no `/` in its first eight bytes (out of line: most levels are
/// shorter).
#[inline(never)]
fn long_level(rest: &[u8]) -> usize {
    rest.iter()
        .skip(8)
        .position(|&c| c == b'/')
        .map_or(rest.len(), |at| at + 8)
}

/// The first eight bytes of a level, zero-padded, as one word.
#[inline(always)]
fn prefix(level: &[u8]) -> u64 {
    prefix_in(level, level.len())
}

/// Nodes up to this many literal children are scanned; wider ones get a hash table.
const SCAN_LIMIT: usize = 8;
const EMPTY_SLOT: u32 = u32::MAX;

/// Every compiled rule list of a policy in shared arrays (per-user lists, the anonymous list,
/// the patterns), each starting at its own root [`NodeId`]. Level texts are stored once per
/// edge in `keys`.
#[derive(Debug)]
pub(super) struct Trie {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    keys: Vec<u8>,
    table: Vec<u32>,
    templates: Vec<(Template, NodeId)>,
}

impl Default for Trie {
    fn default() -> Self {
        // Node 0 is a permanent empty node, so 0 can mean "no `+` child".
        Trie {
            nodes: vec![Node::EMPTY],
            edges: Vec::new(),
            keys: Vec::new(),
            table: Vec::new(),
            templates: Vec::new(),
        }
    }
}

impl Node {
    const EMPTY: Node = Node {
        edges: 0,
        edge_count: 0,
        table: 0,
        table_mask: 0,
        templates: 0,
        template_count: 0,
        plus: 0,
        subtree_deny: NO_DENY,
        flags: 0,
        terminal: Terminal::EMPTY,
        hash: Terminal::EMPTY,
    };
}

/// Hash of a topic level for the wide-node tables: FxHash-style over its [`prefix`] and, for
/// longer levels, its following eight-byte words (the last one overlapping).
#[inline]
fn level_hash(level: &[u8], word: u64) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (word ^ level.len() as u64).wrapping_mul(K);
    if level.len() > 8 {
        let mut rest = &level[8..];
        while let Some((w, tail)) = rest.split_first_chunk::<8>() {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(*w)).wrapping_mul(K);
            rest = tail;
        }
        if !rest.is_empty() {
            if let Some(w) = level.last_chunk::<8>() {
                h = (h.rotate_left(5) ^ u64::from_le_bytes(*w)).wrapping_mul(K);
            }
        }
    }
    (h >> 32) as u32
}

/// Splits off the first level of a topic: `("a", Some("b/c"))` for `a/b/c`.
///
/// A plain byte scan: topic levels are short, and `str::split_once` would go through the
/// generic char searcher on this hot path.
#[inline]
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Trie {
    /// Freezes a built rule list into the arrays; returns its root.
    pub(super) fn add(&mut self, builder: Builder<'_>) -> NodeId {
        self.freeze(&builder, 0, &mut Vec::new())
    }

    /// Trims spare capacity once every rule list is in.
    pub(super) fn shrink(&mut self) {
        self.nodes.shrink_to_fit();
        self.edges.shrink_to_fit();
        self.keys.shrink_to_fit();
        self.table.shrink_to_fit();
        self.templates.shrink_to_fit();
    }

    /// Freezes node `at` of `b` and everything below it. `scratch` holds the literal
    /// children of the nodes on the way down (each call uses the part past what it found).
    fn freeze<'t>(
        &mut self,
        b: &Builder<'t>,
        at: u32,
        scratch: &mut Vec<(&'t str, u32)>,
    ) -> NodeId {
        let id = index(self.nodes.len());
        self.nodes.push(Node::EMPTY);
        let bn = *b.node(at);
        let mut node = Node {
            terminal: bn.terminal,
            hash: bn.hash,
            ..Node::EMPTY
        };
        let mut deny = bn.terminal.deny.max(bn.hash.deny);
        // Literal children: a contiguous block of edges, reserved before the children add
        // theirs.
        let first = self.edges.len();
        let base = scratch.len();
        scratch.extend(b.literals(at));
        scratch[base..].sort_unstable_by(|x, y| x.0.cmp(y.0));
        let count = scratch.len() - base;
        node.edges = index(first);
        node.edge_count = index(count);
        for &(key, _) in &scratch[base..] {
            self.edges.push(Edge {
                prefix: prefix(key.as_bytes()),
                key: index(self.keys.len()),
                key_len: index(key.len()),
                node: 0,
            });
            self.keys.extend_from_slice(key.as_bytes());
        }
        for at in 0..count {
            let child = scratch[base + at].1;
            let c = self.freeze(b, child, scratch);
            deny = deny.max(self.nodes[c as usize].subtree_deny);
            self.edges[first + at].node = c;
        }
        scratch.truncate(base);
        self.index_edges(&mut node);
        if bn.plus != NONE {
            let c = self.freeze(b, bn.plus, scratch);
            deny = deny.max(self.nodes[c as usize].subtree_deny);
            node.plus = c;
        }
        if bn.templates != NONE {
            let mut frozen = Vec::new();
            let mut next = bn.templates;
            while let Some((template, child, after)) = b.templates.get(next as usize) {
                next = *after;
                let c = self.freeze(b, *child, scratch);
                deny = deny.max(self.nodes[c as usize].subtree_deny);
                frozen.push((template.clone(), c));
            }
            // After the children, which add their own templates.
            let start = self.templates.len();
            node.templates = index(start);
            node.template_count = index(frozen.len());
            self.templates.extend(frozen);
        }
        node.subtree_deny = deny;
        node.flags = if node.hash == Terminal::EMPTY {
            0
        } else {
            HAS_HASH
        } | if node.plus == 0 { 0 } else { HAS_PLUS };
        self.nodes[id as usize] = node;
        id
    }

    /// Gives a node with more than [`SCAN_LIMIT`] literal children its hash table.
    fn index_edges(&mut self, node: &mut Node) {
        let count = node.edge_count as usize;
        if count <= SCAN_LIMIT {
            return;
        }
        let first = node.edges as usize;
        let size = (count * 2).next_power_of_two();
        let start = self.table.len();
        self.table.resize(start + size, EMPTY_SLOT);
        let mask = size - 1;
        for at in 0..count {
            let e = self.edges[first + at];
            let key = &self.keys[e.key as usize..(e.key + e.key_len) as usize];
            let mut slot = level_hash(key, e.prefix) as usize & mask;
            while self.table[start + slot] != EMPTY_SLOT {
                slot = (slot + 1) & mask;
            }
            self.table[start + slot] = index(first + at);
        }
        node.table = index(start);
        node.table_mask = index(mask);
    }

    /// Builds the node whose literal children are rule lists already added, keyed by name
    /// (the per-user lists); look one up with [`Trie::literal`].
    pub(super) fn add_named(&mut self, named: &[(&str, NodeId)]) -> NodeId {
        let id = index(self.nodes.len());
        let mut node = Node {
            edges: index(self.edges.len()),
            edge_count: index(named.len()),
            ..Node::EMPTY
        };
        for &(name, root) in named {
            self.edges.push(Edge {
                prefix: prefix(name.as_bytes()),
                key: index(self.keys.len()),
                key_len: index(name.len()),
                node: root,
            });
            self.keys.extend_from_slice(name.as_bytes());
        }
        self.index_edges(&mut node);
        self.nodes.push(node);
        id
    }

    #[inline]
    fn key(&self, e: &Edge) -> &[u8] {
        let start = e.key as usize;
        self.keys
            .get(start..start + e.key_len as usize)
            .unwrap_or(&[])
    }

    /// Whether `e` is the edge for `level` (whose [`prefix`] is `word`): the length and the
    /// first eight bytes compared as integers, the text only beyond that.
    #[inline(always)]
    fn is_edge(&self, e: &Edge, level: &[u8], word: u64) -> bool {
        e.prefix == word
            && e.key_len as usize == level.len()
            && (level.len() <= 8 || self.key(e).get(8..) == level.get(8..))
    }

    /// The literal child of `node` for `level`, whose [`prefix`] is `word`.
    #[inline(always)]
    fn child(&self, node: &Node, level: &[u8], word: u64) -> Option<NodeId> {
        if node.edge_count == 0 {
            return None;
        }
        let start = node.edges as usize;
        let edges = self.edges.get(start..start + node.edge_count as usize)?;
        if node.table_mask == 0 {
            return edges
                .iter()
                .find(|e| self.is_edge(e, level, word))
                .map(|e| e.node);
        }
        let mask = node.table_mask as usize;
        let table = self
            .table
            .get(node.table as usize..node.table as usize + mask + 1)?;
        let mut slot = level_hash(level, word) as usize & mask;
        loop {
            let at = *table.get(slot)?;
            if at == EMPTY_SLOT {
                return None;
            }
            let e = self.edges.get(at as usize)?;
            if self.is_edge(e, level, word) {
                return Some(e.node);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The child of node `id` reached by the literal `level` (the users node: a user's root).
    #[inline(always)]
    pub(super) fn literal(&self, id: NodeId, level: &str) -> Option<NodeId> {
        let level = level.as_bytes();
        self.child(self.node(id), level, prefix(level))
    }

    #[inline]
    fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(id as usize).unwrap_or(&Node::EMPTY)
    }

    fn templates_of(&self, node: &Node) -> &[(Template, NodeId)] {
        let start = node.templates as usize;
        self.templates
            .get(start..start + node.template_count as usize)
            .unwrap_or(&[])
    }

    /// Collects every rule of the list at `root` matching `topic`. A topic starting with `$`
    /// is matched only by rules whose first level is a literal starting with `$` (never `#` or
    /// `+`); deny rules also by a first-level template whose substituted text starts with `$`
    /// (Mosquitto 2.0 checks the `$` of the substituted pattern).
    pub(super) fn match_topic(
        &self,
        root: NodeId,
        topic: &str,
        subst: &Subst<'_>,
        hits: &mut Hits,
    ) {
        self.walk::<BOTH>(root, topic, topic.starts_with('$'), subst, hits);
    }

    /// Collects every rule of a list without templates (the per-user and anonymous lists)
    /// matching `topic`, as [`Trie::match_topic`] does: one loop along the literal path; the
    /// `+` branches it passes recurse (as deep as the list's filters, at most).
    pub(super) fn match_plain(&self, root: NodeId, topic: &str, hits: &mut Hits) {
        let t = topic.as_bytes();
        self.plain_from(root, t, 0, t.first() == Some(&b'$'), hits);
    }

    fn plain_from(&self, id: NodeId, t: &[u8], mut pos: usize, dollar_root: bool, hits: &mut Hits) {
        let mut node = self.node(id);
        // At the root of a `$` topic, `#` and `+` do not match: its flags are not looked at.
        let mut mask = if dollar_root { 0 } else { u32::MAX };
        loop {
            let rest = t.get(pos..).unwrap_or_default();
            let (len, word) = next_level(rest);
            let last = len >= rest.len();
            if node.flags & mask != 0 {
                self.plain_extras(node, t, pos + len + 1, last, hits);
            }
            mask = u32::MAX;
            let child = if len <= 8 && node.table_mask == 0 {
                // A short level among few children: its prefix word and length are the whole
                // comparison.
                let start = node.edges as usize;
                self.edges
                    .get(start..start + node.edge_count as usize)
                    .unwrap_or_default()
                    .iter()
                    .find(|e| e.prefix == word && e.key_len as usize == len)
                    .map(|e| e.node)
            } else {
                self.child_out_of_line(node, rest.get(..len).unwrap_or_default(), word)
            };
            let Some(child) = child else {
                return;
            };
            if last {
                return self.ends_at::<BOTH>(child, hits);
            }
            node = self.node(child);
            pos += len + 1;
        }
    }

    /// [`Trie::child`] for a long level or a wide node, out of the plain walk's loop.
    #[inline(never)]
    fn child_out_of_line(&self, node: &Node, level: &[u8], word: u64) -> Option<NodeId> {
        self.child(node, level, word)
    }

    /// What a plain walk meets at a node besides its literal child: `#` rules, which match
    /// the level and everything below, and the `+` child; `next` is where the topic goes on
    /// after the level (nowhere when `last`). Out of line: most nodes have neither.
    #[inline(never)]
    fn plain_extras(&self, node: &Node, t: &[u8], next: usize, last: bool, hits: &mut Hits) {
        hits.add::<BOTH>(&node.hash);
        if node.plus == 0 {
        } else if last {
            self.ends_at::<BOTH>(node.plus, hits);
        } else {
            self.plain_from(node.plus, t, next, false, hits);
        }
    }

    /// The topic ends at node `id`: its exact rules, and `x/#` matching its parent `x`.
    #[inline(always)]
    fn ends_at<const WANT: Want>(&self, id: NodeId, hits: &mut Hits) {
        let node = self.node(id);
        hits.add::<WANT>(&node.terminal);
        hits.add::<WANT>(&node.hash);
    }

    /// Walks from `id` along the literal path iteratively; `+`, `#` and templates branch off
    /// recursively.
    fn walk<const WANT: Want>(
        &self,
        mut id: NodeId,
        mut rest: &str,
        mut dollar_root: bool,
        s: &Subst<'_>,
        hits: &mut Hits,
    ) {
        loop {
            let node = self.node(id);
            let (len, word) = next_level(rest.as_bytes());
            let (level, tail) = match rest.get(..len) {
                Some(level) if len < rest.len() => (level, rest.get(len + 1..)),
                _ => (rest, None),
            };
            if !dollar_root {
                hits.add::<WANT>(&node.hash);
                if node.plus != 0 {
                    self.descend::<WANT>(node.plus, tail, s, hits);
                }
            }
            if node.template_count != 0 {
                self.templates_at::<WANT>(node, rest, dollar_root, s, hits);
            }
            let Some(child) = self.child(node, level.as_bytes(), word) else {
                return;
            };
            match tail {
                Some(t) => {
                    id = child;
                    rest = t;
                    dollar_root = false;
                }
                None => return self.ends_at::<WANT>(child, hits),
            }
        }
    }

    #[inline(never)]
    fn templates_at<const WANT: Want>(
        &self,
        node: &Node,
        rest: &str,
        dollar_root: bool,
        s: &Subst<'_>,
        hits: &mut Hits,
    ) {
        let denies = WANT != GRANT;
        let grants = WANT != DENY && !dollar_root;
        for (template, child) in self.templates_of(node) {
            if denies && grants && s.same {
                self.meet::<WANT>(*child, template, rest, &s.deny, s, hits);
                continue;
            }
            if denies {
                self.meet::<DENY>(*child, template, rest, &s.deny, s, hits);
            }
            if grants {
                self.meet::<GRANT>(*child, template, rest, &s.grant, s, hits);
            }
        }
    }

    /// Goes on below `template` (`child` is its node) if it meets `rest` with `values`.
    fn meet<const WANT: Want>(
        &self,
        child: NodeId,
        template: &Template,
        rest: &str,
        values: &Values<'_>,
        s: &Subst<'_>,
        hits: &mut Hits,
    ) {
        match template.meet(rest, values) {
            Met::No => {}
            Met::Rest(after) => self.descend::<WANT>(child, after, s, hits),
            Met::Anything if WANT != GRANT => {
                hits.0.deny = hits.0.deny.max(self.node(child).subtree_deny);
            }
            Met::Anything => {}
        }
    }

    fn descend<const WANT: Want>(
        &self,
        id: NodeId,
        tail: Option<&str>,
        s: &Subst<'_>,
        hits: &mut Hits,
    ) {
        match tail {
            Some(rest) => self.walk::<WANT>(id, rest, false, s, hits),
            None => self.ends_at::<WANT>(id, hits),
        }
    }

    /// Subscription check for one rule list: a deny covering the whole filter decides deny;
    /// a read grant covering the whole filter decides allow; otherwise undecided. "Covering"
    /// is Mosquitto 2.1's `mosquitto_sub_matches_acl`: every topic the filter can match.
    pub(super) fn match_filter(
        &self,
        root: NodeId,
        filter: &str,
        s: &Subst<'_>,
    ) -> Option<Decision> {
        let dollar = filter.starts_with('$');
        // Deny rules with the deny values (templates may reach a `$` filter), grants with the
        // grant values (never through a template at the first level of a `$` filter).
        let deny = self.covering(root, filter, dollar, true, &s.deny, Terminal::deny, max_opt);
        if let Some(id) = deny {
            return Some(Decision::deny(Reason::Rule(id)));
        }
        self.covering(
            root,
            filter,
            dollar,
            false,
            &s.grant,
            Terminal::read,
            min_opt,
        )
        .map(|id| Decision::allow(Reason::Rule(id)))
    }

    /// The rule (as `pick` selects from a terminal, `best` between two) that matches every
    /// topic the filter can match. `dollar_root` at the root for `$` filters, as in
    /// [`Trie::match_topic`]; `dollar_templates`: templates may still match there.
    #[allow(clippy::too_many_arguments)]
    fn covering(
        &self,
        id: NodeId,
        filter: &str,
        dollar_root: bool,
        dollar_templates: bool,
        values: &Values<'_>,
        pick: fn(&Terminal) -> Option<RuleId>,
        best: fn(Option<RuleId>, Option<RuleId>) -> Option<RuleId>,
    ) -> Option<RuleId> {
        let node = self.node(id);
        let (level, tail) = split_level(filter);
        let mut found = None;
        if !dollar_root {
            found = pick(&node.hash);
        }
        if level == "#" {
            return found;
        }
        let at_end = |child: NodeId, tail: Option<&str>| match tail {
            None => {
                let c = self.node(child);
                best(pick(&c.terminal), pick(&c.hash))
            }
            Some(rest) => self.covering(child, rest, false, dollar_templates, values, pick, best),
        };
        if level != "+" {
            if let Some(child) = self.child(node, level.as_bytes(), prefix(level.as_bytes())) {
                found = best(found, at_end(child, tail));
            }
            if !dollar_root || dollar_templates {
                for (template, child) in self.templates_of(node) {
                    match template.meet(filter, values) {
                        Met::No => {}
                        Met::Rest(after) => found = best(found, at_end(*child, after)),
                        // Only deny values match "anything": the subtree's deny covers.
                        Met::Anything if dollar_templates => {
                            found = best(found, deny_id(self.node(*child).subtree_deny))
                        }
                        Met::Anything => {}
                    }
                }
            }
        }
        if !dollar_root && node.plus != 0 {
            found = best(found, at_end(node.plus, tail));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{next_level, prefix, split_level};

    /// The word-at-a-time level split against the plain one, `/` at every position.
    #[test]
    fn next_level_agrees_with_split_level() {
        for len in 0..20 {
            for slash in (0..len).map(Some).chain([None]) {
                for second in [None, Some(3), Some(9)] {
                    let mut t: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if let Some(at) = slash {
                        t[at] = b'/';
                    }
                    if let Some(at) = second.filter(|&at| at < len) {
                        t[at] = b'/';
                    }
                    let t = String::from_utf8(t).expect("ascii");
                    let (level, _) = split_level(&t);
                    assert_eq!(
                        next_level(t.as_bytes()),
                        (level.len(), prefix(level.as_bytes())),
                        "{t:?}"
                    );
                }
            }
        }
        assert_eq!(next_level("é/x".as_bytes()).0, 2);
        assert_eq!(next_level(b"//"), (0, 0));
    }

    use super::super::{Access, AclPolicy, Client};

    /// Wide nodes (hashed children) and levels of every length around the eight-byte prefix:
    /// each exact rule matches its own topic and no near miss.
    #[test]
    fn wide_nodes_and_long_levels() {
        let names: Vec<String> = (0..40)
            .map(|i| "abcdefghijklmnopqrstu"[..(i % 21)].to_string() + &i.to_string())
            .chain((0..20).map(|n| "x".repeat(n)))
            .collect();
        let mut text = String::new();
        for (u, user) in names.iter().enumerate() {
            if user.is_empty() {
                continue;
            }
            text.push_str(&format!("user {user}\n"));
            for level in &names {
                text.push_str(&format!("topic write a/{level}/{u}\n"));
            }
        }
        let p = AclPolicy::parse(Path::new("t.acl"), text.as_bytes()).expect("parses");
        for (u, user) in names.iter().enumerate() {
            if user.is_empty() {
                continue;
            }
            let c = Client {
                id: Some("c"),
                username: Some(user),
            };
            for level in &names {
                let topic = format!("a/{level}/{u}");
                assert!(
                    p.check(&c, &topic, Access::Write, false).allowed,
                    "{user} {topic}"
                );
                for miss in [format!("{level}y"), format!("y{level}")] {
                    let topic = format!("a/{miss}/{u}");
                    let allowed = names.contains(&miss);
                    assert_eq!(
                        p.check(&c, &topic, Access::Write, false).allowed,
                        allowed,
                        "{user} {topic}"
                    );
                }
                assert!(
                    !p.check(&c, &format!("a/{level}/{}", u + 1000), Access::Write, false)
                        .allowed
                );
            }
            assert!(p.has_user(user));
        }
        assert!(!p.has_user("abcdefghz"));
        assert!(!p.has_user("nobody-at-all-here"));
    }
}

"""A run's graph as SVG, drawn on the server: a flow's steps left to right by depth, or a
machine's states from the initial one, coloured by how far the run got. Plain shapes and
text, so the page needs no script and no asset from anywhere."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, GAP_X, GAP_Y = 170, 38, 90, 18

#: Fill per status; what is not here is drawn as not reached.
FILL = {"succeeded": "#1f9d55", "failed": "#d64545", "running": "#d69e2e",
        "ready": "#3182ce", "waiting": "#805ad5", "needs_attention": "#dd6b20",
        "cancelled": "#718096", "upstream_failed": "#b83280", "pending": "#a0aec0",
        "current": "#d69e2e", "visited": "#1f9d55", "final": "#2d3748"}


def flow_nodes(body: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """(nodes, edges, kinds) of a flow's stored graph."""
    listed = body.get("nodes", [])
    nodes = {n["name"]: n for n in listed} if isinstance(listed, list) else dict(listed)
    names = list(nodes)
    edges = [(dep, name) for name, node in nodes.items() for dep in node.get("deps", [])]
    return names, edges, {n: nodes[n].get("kind", "task") for n in names}


def machine_nodes(body: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]], str,
                                                 dict[tuple[str, str], str]]:
    """(states, transitions, initial, what moves along each transition) of a machine's
    stored body: the events, "done" (its action succeeded), an error's name, or "after"
    (its timer)."""
    states = body.get("states", {})
    labels: dict[tuple[str, str], list[str]] = {}

    def add(a: str, b: str, why: str) -> None:
        labels.setdefault((a, b), [])
        if why not in labels[(a, b)]:
            labels[(a, b)].append(why)

    for name, spec in states.items():
        for r in spec.get("done", []):
            add(name, r["to"], "done")
        for error, target in spec.get("errors", []):
            add(name, target, str(error))
        for event, routes in spec.get("on", {}).items():
            for r in routes:
                add(name, r["to"], event)
        if spec.get("then"):
            add(name, spec["then"], "after")
    edges = list(labels)
    return list(states), edges, str(body.get("initial", "")), {
        edge: ", ".join(whys) for edge, whys in labels.items()}


def _layers(names: list[str], edges: list[tuple[str, str]], roots: list[str]) -> dict[str, int]:
    """Each node's column: its distance from a root along edges (BFS, so cycles end)."""
    after: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        after.setdefault(a, []).append(b)
    depth = {r: 0 for r in roots}
    todo = list(roots)
    while todo:
        node = todo.pop(0)
        for nxt in after.get(node, []):
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                todo.append(nxt)
    deepest = max(depth.values(), default=0)
    return {n: depth.get(n, deepest + 1) for n in names}


def dag_depths(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """A flow's column per step: one past the deepest step it waits for."""
    deps: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        deps.setdefault(b, []).append(a)
    depth: dict[str, int] = {}

    def of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            parents = [d for d in deps.get(name, []) if d not in seen]
            depth[name] = 1 + max((of(d, seen | {name}) for d in parents), default=-1)
        return depth[name]

    for n in names:
        of(n)
    return depth


def svg(names: list[str], edges: list[tuple[str, str]], columns: dict[str, int],
        fills: dict[str, str], labels: dict[str, str],
        strips: dict[str, list[tuple[float, str]]] | None = None,
        edge_labels: dict[tuple[str, str], str] | None = None) -> str:
    """`strips` draws a bar along a node's foot: (fraction, colour) pieces, left to right,
    for a map's items by status; `edge_labels` writes what moves along a transition."""
    rows: dict[int, int] = {}
    at: dict[str, tuple[int, int]] = {}
    for name in names:
        col = columns[name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        at[name] = (10 + col * (WIDTH + GAP_X), 10 + row * (HEIGHT + GAP_Y))
    width = 20 + (max(columns.values(), default=0) + 1) * (WIDTH + GAP_X)
    height = 20 + max(rows.values(), default=1) * (HEIGHT + GAP_Y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z" fill="#718096"/></marker></defs>']
    for a, b in edges:
        if a in at and b in at:
            (x1, y1), (x2, y2) = at[a], at[b]
            if a == b:
                continue
            parts.append(f'<line x1="{x1 + WIDTH}" y1="{y1 + HEIGHT // 2}" x2="{x2}" '
                         f'y2="{y2 + HEIGHT // 2}" stroke="#718096" stroke-width="1.5" '
                         f'marker-end="url(#arrow)"/>')
            why = (edge_labels or {}).get((a, b))
            if why:
                short = why if len(why) <= 16 else why[:15] + "…"
                mx, my = (x1 + WIDTH + x2) / 2, (y1 + y2) / 2 + HEIGHT // 2 - 4
                parts.append(f'<text class="edge" x="{mx:.0f}" y="{my:.0f}" '
                             f'text-anchor="middle" font-size="10.5" fill="#4a5568">'
                             f'<title>{escape(why)}</title>{escape(short)}</text>')
    for name in names:
        x, y = at[name]
        fill = fills.get(name, "#e2e8f0")
        text = "#1a202c" if fill == "#e2e8f0" else "#ffffff"
        label = labels.get(name, name)
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(f'<g class="node" data-name="{escape(name)}"><title>{escape(label)}'
                     f'</title><rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" '
                     f'rx="8" fill="{fill}"/><text x="{x + WIDTH // 2}" y="{y + 24}" '
                     f'text-anchor="middle" fill="{text}" font-size="13">{escape(short)}'
                     f'</text>')
        left = float(x + 6)
        for fraction, colour in (strips or {}).get(name, []):
            piece = fraction * (WIDTH - 12)
            parts.append(f'<rect x="{left:.1f}" y="{y + HEIGHT - 7}" width="{piece:.1f}" '
                         f'height="4" fill="{colour}" stroke="#ffffff" stroke-width="0.5"/>')
            left += piece
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def run_graph(kind: str, body: dict[str, Any], view: dict[str, Any]) -> str:
    """The run's graph, coloured by its steps (a flow) or its transitions (a machine)."""
    if kind == "machine":
        names, edges, initial, why = machine_nodes(body)
        visited = {t["to"] for t in view.get("transitions", [])}
        fills = {n: FILL["visited"] for n in visited}
        if view.get("state") in names:
            fills[view["state"]] = FILL["failed" if view.get("status") == "failed"
                                        else "succeeded" if view.get("status") == "succeeded"
                                        else "current"]
        labels = {n: f"{n} (final)" if "final" in body["states"][n] else n for n in names}
        return svg(names, edges, _layers(names, edges, [initial]), fills, labels,
                   edge_labels=why)
    names, edges, kinds = flow_nodes(body)
    if not names:  # a handler: one step
        names = [s["name"] for s in view.get("steps", [])][:1]
        edges, kinds = [], {}
    status = {s["name"]: s["status"] for s in view.get("steps", [])}
    fills = {n: FILL.get(status.get(n, ""), "#e2e8f0") for n in names}
    labels = {n: n if kinds.get(n, "task") == "task" else f"{n} ({kinds[n]})" for n in names}
    strips: dict[str, list[tuple[float, str]]] = {}
    for name in names:
        if kinds.get(name) == "map":
            items = map_items(name, view)
            if items:
                done = items.get("succeeded", 0)
                total = sum(items.values())
                labels[name] = f"{name} (map {done}/{total})"
                strips[name] = [(count / total, FILL.get(state, "#e2e8f0"))
                                for state, count in sorted(items.items())]
    return svg(names, edges, dag_depths(names, edges), fills, labels, strips)


def map_items(node: str, view: dict[str, Any]) -> dict[str, int]:
    """How many of a map's items are in each status: the graph draws a map as one node,
    so these say how far its items got."""
    counts: dict[str, int] = {}
    for step in view.get("steps", []):
        if step.get("kind") == "item" and step["name"].startswith(f"{node}["):
            counts[step["status"]] = counts.get(step["status"], 0) + 1
    return counts

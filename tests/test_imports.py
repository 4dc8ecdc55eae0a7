"""The import graph of prep/ and train/, read with ast (imports inside functions included): no cycle, and the
arrows run one way — prep.base ← prep.datasets ← the prep stages ← prep.__main__; train uses only prep.base."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("prep", "train")


def module_files():
    """``{module name: path}`` of every module of the packages (a package is its ``__init__``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The project modules ``name`` imports anywhere in its file, as ``{module: first line}``."""
    is_package = path.name == "__init__.py"
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            # `from a import b` imports a, and a.b too when b is a module
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` names a.b.c; `from a.b import func` a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def import_graph():
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}, modules


def layer(module):
    if module == "prep.base" or module.startswith("prep.base."):
        return "base"
    if module == "prep.datasets" or module.startswith("prep.datasets."):
        return "datasets"
    if module == "prep.__main__":
        return "main"
    if module == "prep":
        return "package"
    if module.startswith("prep."):
        return "stage"
    return "train"


# (from layer, to layer) arrows that may not exist; stage -> stage is checked separately (different modules)
FORBIDDEN = {
    ("base", "datasets"), ("base", "stage"), ("base", "main"), ("base", "package"), ("base", "train"),
    ("datasets", "stage"), ("datasets", "main"), ("datasets", "package"), ("datasets", "train"),
    ("stage", "main"), ("stage", "train"), ("main", "train"), ("package", "train"),
    ("package", "datasets"), ("package", "stage"), ("package", "main"),
    ("train", "datasets"), ("train", "stage"), ("train", "main"), ("train", "package"),
}


def forbidden_arrows(graph, modules):
    found = []
    for source, targets in graph.items():
        for target, line in targets.items():
            arrow = (layer(source), layer(target))
            if arrow in FORBIDDEN or arrow == ("stage", "stage"):
                where = modules[source].relative_to(REPO)
                found.append(f"{where}:{line}: {source} ({arrow[0]}) imports {target} ({arrow[1]})")
    return found


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_imports_inside_functions():
    graph, modules = import_graph()
    assert "prep.base.frame_source" in graph["prep.check"]  # a top-level import
    assert set(graph["prep.base.index_file"]) <= set(modules)  # only project modules are edges (not pandas)
    lazy = []
    for source, path in modules.items():
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy += [(source, node.module) for node in ast.walk(function) if isinstance(node, ast.ImportFrom)
                         and (node.module or "").startswith(PACKAGES) and node.module in graph[source]]
    assert lazy, "no import inside a function was found in the graph: the walk would miss them"


def test_no_import_cycle():
    graph, _ = import_graph()
    found = cycles(graph)
    assert not found, "import cycles (imports inside functions count):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_imports_run_one_way():
    graph, modules = import_graph()
    found = forbidden_arrows(graph, modules)
    assert not found, ("imports against the layers (base <- datasets <- stages <- __main__; train -> prep.base "
                       "only; stages never import each other):\n" + "\n".join(found))


@pytest.mark.parametrize("source, target, bad", [
    ("prep.base.frame_source", "prep.datasets", True), ("prep.datasets.ucf101", "prep.arrange", True),
    ("prep.flow", "prep.frames", True), ("train.report", "prep.flow", True), ("prep.check", "train.report", True),
    ("train.report", "prep.base.frame_source", False), ("prep.flow", "prep.base.media", False),
    ("prep.__main__", "prep.flow", False), ("prep.arrange", "prep.datasets", False),
])
def test_the_layer_rules_themselves(source, target, bad):
    modules = {source: REPO / "x.py", target: REPO / "y.py"}
    assert bool(forbidden_arrows({source: {target: 1}, target: {}}, modules)) is bad
    assert cycles({source: {target: 1}, target: {source: 2}}) == [sorted([source, target])]

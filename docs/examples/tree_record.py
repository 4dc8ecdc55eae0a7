from prep.base.trees import read_tree, tree_conventions

print(read_tree("data/synthetic/flow"))              # the flow tree's .tree.meta, as prep flow wrote it
flow = tree_conventions("data/synthetic/flow", "flow")   # what a reader takes: the record over the defaults
print(flow["naming"], flow["algorithm"], flow["backend"], flow["bound"])
tree_conventions("data/synthetic/flow", "flow", bound=20)  # a flag that agrees passes; bound=10 would be an error

#!/usr/bin/python3
"""The layers of kmseg depend only downward.

Each folder is a layer with a rank; a file may include headers of its own
folder or of a folder of lower rank, never of a sibling or a higher one, and
each layer's meson.build may use only the dependencies of lower layers.
Prints PASS/FAIL lines for scripts/test.sh.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANK = {"base": 0, "kmeans": 1, "opencv_c": 1, "config": 1, "io": 1,
        "stages": 2, "pipeline": 3, "cli": 4, "public": 5}
# each layer's folder; "public" is the umbrella of the installed headers
FOLDER = {layer: layer for layer in RANK}
FOLDER["public"] = os.path.join("include", "kmseg")
# files whose layer is not their folder's: the pipeline facade is installed
# beside the umbrella but is written over the pipeline layer
PLACED = {"pipeline_api.h": "pipeline"}
# the meson dependency each layer exports
DEP = {"base_dep": "base", "kmeans_dep": "kmeans", "opencv_c_dep": "opencv_c",
       "config_dep": "config", "io_dep": "io", "stages_dep": "stages",
       "pipeline_dep": "pipeline", "kmseg_core_dep": "pipeline",
       "cli_lib": "cli"}
SOURCE = re.compile(r".*\.(c|h|cpp|hpp)(\.in)?$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def headers():
    where = {}
    for folder_layer in RANK:
        for name in os.listdir(os.path.join(ROOT, FOLDER[folder_layer])):
            # kmseg_version.h.in: meson makes kmseg_version.h of it
            name = name[:-3] if name.endswith(".h.in") else name
            if name.endswith((".h", ".hpp")):
                layer = PLACED.get(name, folder_layer)
                if name in where:
                    sys.exit("FAIL layers: header %s is in both %s/ and %s/"
                             % (name, where[name], layer))
                where[name] = layer
    return where


def sources():
    for folder_layer in RANK:
        folder = os.path.join(ROOT, FOLDER[folder_layer])
        for name in sorted(os.listdir(folder)):
            if SOURCE.match(name):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    yield PLACED.get(name, folder_layer), name, f.read()


def check_includes(where, files_in):
    bad = []
    files = 0
    for layer, name, text in files_in:
        rank = RANK[layer]
        files += 1
        for inc in INCLUDE.findall(text):
            target = where.get(os.path.basename(inc))
            if target is None:
                bad.append("%s/%s includes %s, which no layer has"
                           % (layer, name, inc))
            elif target != layer and RANK[target] >= rank:
                bad.append("%s/%s (rank %d) includes %s/%s (rank %d)"
                           % (layer, name, rank, target, inc, RANK[target]))
    return files, bad


def check_meson():
    bad = []
    for layer, rank in RANK.items():
        text = open(os.path.join(ROOT, FOLDER[layer], "meson.build"),
                    encoding="utf-8").read()
        text = re.sub(r"#.*", "", text)
        # what the layer declares itself is not a use
        declared = set(re.findall(r"^(\w+)\s*=", text, re.M))
        for word in set(re.findall(r"\b\w+_(?:dep|lib)\b", text)) - declared:
            target = DEP.get(word)
            if target is not None and target != layer and RANK[target] >= rank:
                bad.append("%s/meson.build uses %s of %s/" % (layer, word, target))
    return bad


def main():
    where = headers()
    files, bad = check_includes(where, sources())
    if files < 50:
        print("FAIL layers: only %d source files found under %s" % (files, ROOT))
    elif bad:
        for b in bad:
            print("FAIL layers: " + b)
    else:
        print("PASS layers: %d files include only their own layer or lower ones"
              % files)
    bad = check_meson()
    for b in bad:
        print("FAIL layers: " + b)
    if not bad:
        print("PASS layers: every layer's meson.build links only lower layers")
    # the check can fail: planted upward and sideways includes are found
    for layer, inc in (("base", "batch.h"), ("kmeans", "opencv_c.h"),
                       ("stages", "commands.h"), ("pipeline", "kmseg.h"),
                       ("stages", "pipeline_api.h")):
        planted = [(layer, "planted.c", '#include "%s"\n' % inc)]
        _, found = check_includes(where, planted)
        print(("PASS" if found else "FAIL") +
              " layers: %s/ including %s is refused" % (layer, inc))


if __name__ == "__main__":
    main()

#!/bin/sh
# Installs a built tree into a temporary folder and uses it as a user would:
# pkg-config, the headers from C and C++, a program linked against
# libkmseg.so and one against libkmseg.a, the exported symbols, the man page
# and the samples. Prints PASS/FAIL lines; exit status 1 when any failed.
#   tests/install_test.sh BUILD_DIR     (after a build; no network)
# CC and CXX name the compilers (default cc, g++); programs linked against a
# sanitizer build get its -fsanitize too, which brings in the runtime.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: tests/install_test.sh BUILD_DIR}" && pwd) || exit 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kmseg_install.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0
pass() { echo "PASS install: $*"; }
fail() { echo "FAIL install: $*"; failed=1; }

# where meson puts things, from the build's own options
opt() {
    meson introspect "$build" --buildoptions | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]))' "$1"
}
version=$(meson introspect "$build" --projectinfo |
          python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
sanitize=$(opt b_sanitize)
san_flags=
[ "$sanitize" = none ] || san_flags="-fsanitize=$sanitize"
cc="${CC:-cc} $san_flags"
cxx="${CXX:-g++} $san_flags"
prefix=$(opt prefix)
root=$tmp/root$prefix
lib=$root/$(opt libdir)
inc=$root/$(opt includedir)/kmseg
share=$root/$(opt datadir)/kmseg
man1=$root/$(opt mandir)/man1

if meson install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/log" 2>&1
then
    pass "meson install --destdir"
else
    cat "$tmp/log"
    fail "meson install --destdir"
    exit 1
fi

# --- pkg-config ---------------------------------------------------------------
# the sysroot puts kmseg.pc's own paths into the folder (other packages'
# paths become folders that do not exist there, which compilers ignore)
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
got=$(pkg-config --modversion kmseg 2>&1)
if [ "$got" = "$version" ]; then
    pass "pkg-config --modversion kmseg is $version"
else
    fail "pkg-config --modversion kmseg: '$got', want '$version'"
fi
cflags=$(pkg-config --cflags kmseg)
libs=$(pkg-config --libs kmseg)
static_libs=$(pkg-config --static --libs kmseg | sed 's/-lkmseg\b/-l:libkmseg.a/')

# --- files --------------------------------------------------------------------
missing=
for f in "$root/bin/kmseg" "$lib/libkmseg.a" "$lib/libkmseg.so" \
         "$inc/kmseg.h" "$inc/kmseg_version.h" "$inc/pipeline_api.h" \
         "$inc/error.h" "$inc/image.h" "$inc/kmeans.h" "$inc/elbow.h" \
         "$man1/kmseg.1" "$share/samples/lung_ct.ini" \
         "$share/samples/notebook.ini" "$share/samples/ct_kmeans.ini" \
         "$share/samples/lung_volume.ini" "$share/samples/ct/ID_0000_Z_0142.tif" \
         "$share/samples/masks/ID_0000_Z_0142.png" \
         "$share/samples/png/ID_0000_Z_0142.png" \
         "$share/samples/volume/ct.nii.gz" "$share/samples/volume/lung_mask.nii.gz"
do
    [ -s "$f" ] || missing="$missing ${f#"$tmp/root"}"
done
if [ -z "$missing" ]; then
    pass "binary, libraries, headers, man page and samples are installed"
else
    fail "not installed:$missing"
fi
soname=$(readelf -d "$lib/libkmseg.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "libkmseg.so.${version%%.*}" ] &&
   [ -e "$lib/libkmseg.so.$version" ]; then
    pass "libkmseg.so.$version has the soname $soname"
else
    fail "libkmseg.so soname '$soname', want libkmseg.so.${version%%.*}"
fi

# --- headers: each on its own, and the umbrella, as C and as C++ ----------------
# what the installed headers include must be installed beside them
unmet=$(cd "$inc" && sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' \
        ./*.h | sort -u | while read -r f; do [ -e "$f" ] || printf ' %s' "$f"; done)
if [ -z "$unmet" ]; then
    pass "the installed headers include only installed headers"
else
    fail "installed headers include headers that are not installed (add them to install_headers in meson.build):$unmet"
fi
ok=1
for h in "$inc"/*.h; do
    name=$(basename "$h")
    printf '#include <kmseg/%s>\nint kmseg_test_unit;\n' "$name" >"$tmp/h.c"
    cp "$tmp/h.c" "$tmp/h.cpp"
    if ! $cc -std=c11 -Wall -Wextra -Werror -pedantic $cflags -c "$tmp/h.c" \
            -o "$tmp/h.o" 2>"$tmp/log"; then
        cat "$tmp/log"
        ok=0
        echo "  <kmseg/$name> does not compile alone as C11"
    fi
    if ! $cxx -std=c++17 -Wall -Wextra -Werror $cflags -c "$tmp/h.cpp" \
            -o "$tmp/h.o" 2>"$tmp/log"; then
        cat "$tmp/log"
        ok=0
        echo "  <kmseg/$name> does not compile alone as C++17"
    fi
done
[ $ok = 1 ] && pass "every header compiles alone as C11 (-Wall -Wextra -Werror -pedantic) and C++17 (-Wall -Wextra -Werror)" ||
    fail "a header does not compile alone"
cat >"$tmp/cxx.cpp" <<'CXX'
#include <kmseg/kmseg.h>
#include <cstring>
int main()
{
    kms_kmeans_params p;
    kms_kmeans_params_default(&p);
    kmseg_pipeline *pl = nullptr;
    kms_error err;
    kms_status st = kmseg_pipeline_open(&pl, "/nonexistent.ini", nullptr, 0, &err);
    return p.k == 2 && st != KMS_OK && !pl &&
           std::strcmp(kmseg_version(), KMSEG_VERSION_STRING) == 0 ? 0 : 1;
}
CXX
if $cxx -std=c++17 -Wall -Wextra -Werror $cflags "$tmp/cxx.cpp" -o "$tmp/cxx" \
        $libs 2>"$tmp/log" && LD_LIBRARY_PATH="$lib" "$tmp/cxx"; then
    pass "<kmseg/kmseg.h> compiles, links and runs as C++17 (-Wall -Wextra -Werror)"
else
    cat "$tmp/log"
    fail "<kmseg/kmseg.h> as C++17"
fi

# --- the example, shared and static ---------------------------------------------
cat >"$tmp/tiny.ini" <<'INI'
; made by tests/install_test.sh: k-means on an image given in memory
[pipeline]
output = out
stages = read, reshape, kmeans, recolor, write
[read]
mode = unchanged
[reshape]
features = intensity
[kmeans]
backend = native
k = 3
[write]
products = labels, recolor
INI
run_example() { # name, then the command
    name=$1
    shift
    rm -rf "$tmp/out"
    if "$@" "$share/samples" "$tmp/tiny.ini" "$tmp/out" >"$tmp/log" 2>&1; then
        pass "$name: $(grep -c '^ok' "$tmp/log") checks of k-means and pipelines"
    else
        cat "$tmp/log"
        fail "$name"
    fi
}
if $cc -std=c11 -Wall -Wextra -Werror -pedantic $cflags \
        "$src/tests/install_example.c" -o "$tmp/example" $libs 2>"$tmp/log"; then
    if readelf -d "$tmp/example" | grep -q "NEEDED.*\[libkmseg.so.${version%%.*}\]"
    then
        pass "cc \$(pkg-config --cflags --libs kmseg) links libkmseg.so"
    else
        fail "the example does not need libkmseg.so"
    fi
    run_example "example on libkmseg.so" env LD_LIBRARY_PATH="$lib" "$tmp/example"
else
    cat "$tmp/log"
    fail "cc \$(pkg-config --cflags --libs kmseg) install_example.c"
fi
if $cc -std=c11 -Wall -Wextra -Werror $cflags "$src/tests/install_example.c" \
        -o "$tmp/example_static" $static_libs 2>"$tmp/log"; then
    if readelf -d "$tmp/example_static" | grep -q 'NEEDED.*libkmseg'; then
        fail "the static example still needs libkmseg.so"
    else
        pass "cc ... \$(pkg-config --static --libs kmseg) links libkmseg.a"
    fi
    run_example "example on libkmseg.a" "$tmp/example_static"
else
    cat "$tmp/log"
    fail "static link: $static_libs"
fi

# --- exported symbols = the functions of the installed headers -------------------
nm -D --defined-only "$lib/libkmseg.so" | awk '{print $NF}' | sort -u >"$tmp/exported"
python3 - "$inc" >"$tmp/declared" <<'PY'
import os, re, sys
names = set()
for h in os.listdir(sys.argv[1]):
    text = open(os.path.join(sys.argv[1], h), encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # a declaration starts a line with its type; static inline ones,
    # macros and typedefs are no symbols
    for m in re.finditer(r"^(?!static|#|typedef|\s)[^;{}()]*?\b(kms\w*)\s*\(",
                         text, re.M):
        names.add(m.group(1))
print("\n".join(sorted(names)))
PY
extra=$(comm -23 "$tmp/exported" "$tmp/declared" | tr '\n' ' ')
absent=$(comm -13 "$tmp/exported" "$tmp/declared" | tr '\n' ' ')
n=$(wc -l <"$tmp/exported")
if [ -z "$extra" ] && [ -z "$absent" ] && [ "$n" -gt 20 ]; then
    pass "nm -D libkmseg.so: exactly the $n functions of the installed headers"
else
    [ -n "$extra" ] && fail "libkmseg.so exports names no installed header declares: $extra"
    [ -n "$absent" ] && fail "declared in the installed headers but not exported (add to libkmseg.map): $absent"
    [ "$n" -gt 20 ] || fail "libkmseg.so exports only $n names"
fi
hidden=
for s in kms_pipeline_build kms_batch_run kms_config_load kms_cv_version \
         kms_stage_find kms_nifti_read kms_context_clear kms_output_write; do
    nm "$lib/libkmseg.a" 2>/dev/null | grep -q " T $s\$" || hidden="$hidden $s?"
    grep -qx "$s" "$tmp/exported" && hidden="$hidden $s"
done
if [ -z "$hidden" ]; then
    pass "internals (kms_pipeline_build, kms_cv_version, ...) are in libkmseg.a, hidden in libkmseg.so"
else
    fail "internals exported or missing from libkmseg.a:$hidden"
fi

# --- the man page and the installed samples -------------------------------------
if warn=$(groff -man -ww -z "$man1/kmseg.1" 2>&1) && [ -z "$warn" ] &&
   MANWIDTH=80 man -l "$man1/kmseg.1" 2>/dev/null | grep -q 'merge-summaries'; then
    pass "man page renders without warnings (groff -man -ww -z)"
else
    fail "man page: ${warn:-man -l shows no merge-summaries}"
fi
# written by hand: its header names the version it describes
if grep -q "^\.TH KMSEG 1 .*\"kmseg $version\"" "$man1/kmseg.1"; then
    pass "man page is of kmseg $version"
else
    fail "man page: .TH does not say \"kmseg $version\" (update doc/kmseg.1)"
fi
# every installed sample runs from there (the data it names was installed)
bad=
for c in notebook ct_kmeans lung_ct lung_volume; do
    "$root/bin/kmseg" run "$share/samples/$c.ini" -o "$tmp/samples/$c" -q -j 2 \
        >"$tmp/log" 2>&1 || { cat "$tmp/log"; bad="$bad $c.ini"; }
done
if [ -z "$bad" ] &&
   [ "$(ls "$tmp/samples/lung_ct" | grep -c '_mask.png$')" = 4 ] &&
   [ -s "$tmp/samples/lung_volume/ct_mask.nii.gz" ]; then
    pass "installed kmseg runs the 4 installed sample configs"
else
    fail "installed samples that do not run:${bad:- (products missing)}"
fi
exit $failed

#!/bin/sh
# Dependencies between the folders of src/ point down. Each folder has a
# level (LEVELS, lowest first; folders sharing a level are joined by
# commas); a file may use its own folder, its level and the levels below,
# and folders of one level may not use each other in a cycle.
#
# A use is (a) an #include "folder/..." line of a .c or .h file (a header
# belongs to its folder) and (b) an nn_ symbol an object file of
# $BUILD/obj/<folder>/ needs (nm -u), mapped to the folder whose object
# defines it (nm --defined-only). (b) is what shows the calls: every file
# includes nn_internal.h, so includes alone do not.
#
# nn_internal.h (with include/nn.h) is the shared declarations header. It
# belongs to no level and any file may include it: it holds types,
# prototypes and a few static inline helpers of the lowest level (the
# RNG's hash), so including it calls nothing; what a file really uses of
# another folder shows in (b), whichever header declared it. Public nn_*
# symbols count as well as internal nn__* ones: a call through the API is
# as much a dependency.
#
# Usage: scripts/check-deps.sh [BUILD]   (after `make lib`)
LEVELS="core kernels layers graph loss,optim,diag train,io,zoo"

build=${1:-build}
uses=$(mktemp)
defs=$(mktemp)
trap 'rm -f "$uses" "$defs"' EXIT

# One line per use: folder file kind what target-folder.
for f in src/*/*.c src/*/*.h; do
    dir=${f#src/}; dir=${dir%%/*}
    sed -n 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*/[^"]*\)".*|\1|p' "$f" |
        while read -r inc; do echo "$dir $f include \"$inc\" ${inc%%/*}"; done
done > "$uses"

missing=0
for f in src/*/*.c; do
    o=$build/obj/${f#src/}; o=${o%.c}.o
    [ -f "$o" ] || { echo "check-deps: $o is missing; run make lib first"; missing=1; continue; }
    dir=${f#src/}; dir=${dir%%/*}
    nm --defined-only "$o" | awk -v d="$dir" '$2 ~ /^[A-Zi]$/ && $3 ~ /^nn_/ {print $3, d}' >> "$defs"
done
[ $missing -eq 0 ] || { echo "deps: 0 passed, 1 failed"; exit 1; }
for f in src/*/*.c; do
    o=$build/obj/${f#src/}; o=${o%.c}.o
    dir=${f#src/}; dir=${dir%%/*}
    nm -u "$o" | awk '$NF ~ /^nn_/ {print $NF}' | while read -r sym; do
        echo "$dir $f symbol $sym"
    done
done | awk 'NR == FNR {def[$1] = $2; next}
            ($4 in def) {print $0, def[$4]}' "$defs" - >> "$uses"

awk -v levels="$LEVELS" '
BEGIN {
    n = split(levels, lv, " ")
    for (i = 1; i <= n; i++) {
        k = split(lv[i], fs, ",")
        for (j = 1; j <= k; j++) level[fs[j]] = i
    }
    order = levels
    gsub(/ /, " < ", order)
    gsub(/,/, ", ", order)
}
{
    user = $1; file = $2; kind = $3; what = $4; target = $5
    if (user == target) next
    for (x = 1; x <= 2; x++) {
        d = x == 1 ? user : target
        if (!(d in level) && !(d in unknown)) {
            unknown[d] = 1
            printf "check-deps: folder src/%s/ has no level; add it to LEVELS in scripts/check-deps.sh\n", d
            bad++
        }
    }
    if (!(user in level) || !(target in level)) next
    how = kind == "include" ? "includes " what ", a header of" : "uses " what ", defined in"
    if (level[target] > level[user]) {
        printf "check-deps: %s %s src/%s/: %s (level %d) may not use %s (level %d)\n", \
            file, how, target, user, level[user], target, level[target]
        bad++
        next
    }
    if (!((user, target) in edge)) {
        edge[user, target] = file (kind == "include" ? " includes " : " uses ") what
        folders[user] = folders[target] = 1
    }
}
END {
    # Folders on one level must not reach each other: transitive closure.
    for (a in folders) for (b in folders) reach[a, b] = ((a, b) in edge)
    for (k in folders) for (a in folders) for (b in folders)
        if (reach[a, k] && reach[k, b]) reach[a, b] = 1
    for (a in folders) for (b in folders) {
        if (a >= b || !reach[a, b] || !reach[b, a]) continue
        printf "check-deps: cycle between %s and %s:", a, b
        for (c in folders) for (e in folders)
            if (((c, e) in edge) && reach[a, c] && reach[c, a] && \
                reach[a, e] && reach[e, a])
                printf " %s -> %s (%s);", c, e, edge[c, e]
        printf " break one of these\n"
        bad++
    }
    for (k in edge) n_edges++
    if (bad) {
        printf "check-deps: levels, lowest first: %s (LEVELS in scripts/check-deps.sh)\n", order
        print "deps: 0 passed, 1 failed"
        exit 1
    }
    print "deps: 1 passed, 0 failed"
    printf "(%d folder-to-folder dependencies, none upward or in a cycle)\n", n_edges
}' "$uses"

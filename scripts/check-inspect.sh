#!/bin/sh
# Runs nn-inspect ($1/tools/nn-inspect, default build) as a user meets it,
# on what $1/tests/inspect_fixture makes (a small trained classifier saved
# with its preprocessing and threshold, PNG crops of the synthetic defect
# data, and the verdicts the library itself gives on those frames):
#   - good images: one JSON line each, in order, whose class, probability,
#     score and verdict are the library's (expected.txt), exit 0; the same
#     with --threads 3, and with the model for BGR frames;
#   - corrupt PNGs (random bytes, a truncated file, text), a missing file,
#     a directory: an error line each with the library's message, the rest
#     classified, exit 1;
#   - a directory of mixed files: its *.png files only, sorted;
#   - a truncated model, a missing one, one without preprocessing: exit 3
#     and a message, no output;
#   - usage errors: exit 2;
#   - file names that need escaping: every line is valid JSON.
# Prints one closing line: "inspect: N passed, N failed".
set -u
build=${1:-build}
tool=$build/tools/nn-inspect
fixture=$build/tests/inspect_fixture
passed=0
failed=0
tmp=$(mktemp -d -t check-inspect.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# run ARGS...: nn-inspect's exit status in rc, output in $tmp/out, $tmp/err.
run() {
    timeout 120 "$tool" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect_rc WANT WHAT
expect_rc() {
    if [ "$rc" -eq "$1" ]; then pass; else
        fail "$2: exit $rc (want $1); stderr: $(head -c 300 "$tmp/err")"
    fi
}

# The fields nn-inspect prints for a classified image, as expected.txt
# holds them: name class probability score verdict.
fields() {
    sed -n 's|^{"file":"[^"]*/\([^"/]*\)","class":\([0-9]*\),"probability":\([^,]*\),"score":\([^,]*\),"verdict":"\([a-z]*\)","ms":[0-9.]*}$|\1 \2 \3 \4 \5|p' "$1"
}

# Every line of $tmp/out is a JSON object (when python3 is there to say).
json_ok() {
    py=/usr/bin/python3
    [ -x "$py" ] || py=$(command -v python3) || return 0
    "$py" -c 'import json, sys
for line in sys.stdin:
    assert isinstance(json.loads(line), dict), line' <"$tmp/out"
}

for f in "$tool" "$fixture"; do
    [ -x "$f" ] || { echo "check-inspect: $f is missing (make tools $fixture)"; echo "inspect: 0 passed, 1 failed"; exit 1; }
done
mkdir -p "$tmp/set" && "$fixture" "$tmp/set" || {
    echo "inspect: 0 passed, 1 failed (the fixture failed)"
    exit 1
}
set_dir=$tmp/set
model=$set_dir/model.nnm
n_good=$(wc -l <"$set_dir/expected.txt")

# --- good images, one by one and as a directory, 1 and 3 threads
run "$model" "$set_dir"/good/*.png
expect_rc 0 "good images"
fields "$tmp/out" >"$tmp/got"
if cmp -s "$tmp/got" "$set_dir/expected.txt" && [ "$n_good" -ge 8 ]; then pass; else
    fail "good images: the lines differ from the library's verdicts:
$(diff "$set_dir/expected.txt" "$tmp/got")"
fi
grep -q '"verdict":"defective"' "$tmp/out" && grep -q '"verdict":"good"' "$tmp/out" &&
    pass || fail "good images: expected both verdicts among them"
json_ok && pass || fail "good images: output is not JSON lines"
cp "$tmp/out" "$tmp/one"
run --threads 3 "$model" "$set_dir/good"
expect_rc 0 "--threads 3 on the directory"
fields "$tmp/out" >"$tmp/got3"
cmp -s "$tmp/got3" "$set_dir/expected.txt" && pass ||
    fail "--threads 3: the lines differ from one thread's"

# A model for BGR frames: nn-inspect hands it the PNG's channels
# reversed, and the library reverses them back: the same verdicts.
run "$set_dir/bgr.nnm" "$set_dir/good"
expect_rc 0 "a model for BGR frames"
fields "$tmp/out" >"$tmp/got"
cmp -s "$tmp/got" "$set_dir/expected.txt" && pass ||
    fail "a model for BGR frames: the lines differ from the library's verdicts"

# --- bad images among good ones
head -c 64 /dev/urandom >"$tmp/random.png"
head -c 300 "$set_dir/good/crop01.png" >"$tmp/truncated.png"
echo "not an image" >"$tmp/text.png"
run "$model" "$set_dir/good/crop00.png" "$tmp/random.png" "$tmp/truncated.png" \
    "$tmp/missing.png" "$tmp/text.png" "$set_dir/good/crop02.png"
expect_rc 1 "corrupt and missing images"
errors=$(grep -c '"error":' "$tmp/out")
classified=$(grep -c '"verdict":' "$tmp/out")
if [ "$errors" -eq 4 ] && [ "$classified" -eq 2 ] && [ "$(wc -l <"$tmp/out")" -eq 6 ]; then pass; else
    fail "corrupt images: $errors errors and $classified verdicts (want 4 and 2): $(cat "$tmp/out")"
fi
sed -n 2p "$tmp/out" | grep -q '^{"file":"[^"]*random.png","error":"png: ' && pass ||
    fail "random bytes: line 2 is $(sed -n 2p "$tmp/out")"
sed -n 3p "$tmp/out" | grep -q 'truncated.png","error":".*truncated.png' && pass ||
    fail "truncated PNG: line 3 is $(sed -n 3p "$tmp/out")"
sed -n 4p "$tmp/out" | grep -q 'missing.png","error":"png: cannot open .*No such file' && pass ||
    fail "missing file: line 4 is $(sed -n 4p "$tmp/out")"
sed -n 6p "$tmp/out" | grep -q 'crop02.png","class":' && pass ||
    fail "the image after the bad ones: line 6 is $(sed -n 6p "$tmp/out")"
json_ok && pass || fail "corrupt images: output is not JSON lines"

# --- a directory of mixed files
mixed=$tmp/mixed
mkdir -p "$mixed/sub.png" "$mixed/deeper"
cp "$set_dir/good/crop03.png" "$mixed/b.png"
cp "$set_dir/good/crop04.png" "$mixed/A.PNG"
cp "$set_dir/good/crop00.png" "$mixed/deeper/c.png"
cp "$tmp/random.png" "$mixed/c_bad.png"
echo "notes" >"$mixed/README.txt"
cp "$set_dir/good/crop05.png" "$mixed/image.png.bak"
run "$model" "$mixed"
expect_rc 1 "a directory with a corrupt PNG"
names=$(sed 's|^{"file":"\([^"]*\)".*|\1|' "$tmp/out" | tr '\n' ' ')
[ "$names" = "$mixed/A.PNG $mixed/b.png $mixed/c_bad.png " ] && pass ||
    fail "mixed directory: files '$names' (want A.PNG b.png c_bad.png, sorted)"
grep -q 'c_bad.png","error":' "$tmp/out" && pass || fail "mixed directory: no error line for c_bad.png"
rm "$mixed/c_bad.png"
run "$model" "$mixed"
expect_rc 0 "a directory of good PNGs and other files"
run "$model" "$tmp/empty-dir-that-is-missing/"
expect_rc 1 "a directory that does not exist"

# --- models nn-inspect cannot use: exit 3, a message, no lines
head -c 1000 "$model" >"$tmp/truncated.nnm"
for case in "truncated.nnm:truncated" "missing.nnm:cannot open" \
    "random.png:not a libnn model" "noprep:no preprocessing"; do
    file=${case%%:*} want=${case#*:}
    path=$tmp/$file
    [ "$file" = noprep ] && path=$set_dir/noprep.nnm
    run "$path" "$set_dir/good"
    if [ "$rc" -eq 3 ] && [ ! -s "$tmp/out" ] && grep -q "$want" "$tmp/err"; then pass; else
        fail "model $file: exit $rc (want 3), stdout $(wc -c <"$tmp/out") bytes, stderr: $(cat "$tmp/err")"
    fi
done

# --- usage
for args in "" "$model" "--threads 0 $model $set_dir/good" \
    "--threads 3x $model $set_dir/good" "--bogus $model $set_dir/good" \
    "--threads"; do
    # shellcheck disable=SC2086 # the arguments are words
    run $args
    if [ "$rc" -eq 2 ] && grep -q "^nn-inspect: " "$tmp/err" && [ ! -s "$tmp/out" ]; then pass; else
        fail "nn-inspect $args: exit $rc (want 2), stderr: $(cat "$tmp/err")"
    fi
done
run --help
[ "$rc" -eq 0 ] && grep -q '^Usage: nn-inspect' "$tmp/out" && grep -q 'Exit status' "$tmp/out" &&
    pass || fail "--help: exit $rc"

# --- names that need escaping
odd=$tmp/odd
mkdir -p "$odd"
cp "$set_dir/good/crop01.png" "$odd/quote\"back\\slash.png"
cp "$set_dir/good/crop01.png" "$odd/$(printf 'tab\there\001.png')"
cp "$tmp/random.png" "$odd/$(printf 'bad\377byte.png')"
run "$model" "$odd"
expect_rc 1 "odd file names"
[ "$(wc -l <"$tmp/out")" -eq 3 ] && json_ok && pass ||
    fail "odd file names: not 3 JSON lines: $(cat "$tmp/out")"
grep -qF '\"back\\slash.png' "$tmp/out" && grep -qF '\u0009here\u0001' "$tmp/out" &&
    grep -qF 'bad\ufffdbyte' "$tmp/out" && pass || fail "odd file names: escapes: $(cat "$tmp/out")"

echo "inspect: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

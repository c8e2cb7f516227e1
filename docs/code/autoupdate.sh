#!/usr/bin/env bash
# The auto-update walkthrough of docs/auto-update.md as one script: a repository, two hosts run from
# clones of it under --auto-update-from-git, and a pushed commit that reaches both. Run it in an empty
# directory (ports 8765 and 8766 must be free): bash autoupdate.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cp "$here/greeter.py" "$here/greet.py" .
on_commit() {  # on_commit HASH: until both hosts are online on commit HASH (at most 60 s)
    for _ in $(seq 300); do
        n=$(paglets hosts --entry http://127.0.0.1:8765 --online --json 2>/dev/null |
            grep -c "\"commit\": \"$1\"" || true)
        [ "$n" -ge 2 ] && return 0
        sleep 0.2
    done
    echo "the hosts did not come up on $1" >&2
    return 1
}
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT

# --8<-- [start:repo]
export PAGLETS_API_KEY=change-me-to-a-long-random-key
git init --quiet --bare -b main lab.git
git clone --quiet lab.git work
mkdir work/labpaglets
touch work/labpaglets/__init__.py
cp greeter.py work/labpaglets/greeter.py
echo "__pycache__/" > work/.gitignore
git -C work add -A
git -C work commit --quiet -m "greeter v1"
git -C work push --quiet -u origin main
# --8<-- [end:repo]

# --8<-- [start:hosts]
git clone --quiet lab.git alpha
git clone --quiet lab.git beta
(cd alpha && paglets-host --name alpha --port 8765 --auto-update-from-git) 2> alpha.log &
(cd beta && paglets-host --name beta --port 8766 --auto-update-from-git \
    --peer http://127.0.0.1:8765) 2> beta.log &
# --8<-- [end:hosts]
on_commit "$(git -C work rev-parse HEAD)"

# --8<-- [start:greet]
python greet.py
# --8<-- [end:greet]

# --8<-- [start:push]
sed -i 's/Hello from v1/Hello from v2/' work/labpaglets/greeter.py
git -C work commit --quiet -am "greeter v2"
git -C work push --quiet
paglets mesh update --entry http://127.0.0.1:8765
# --8<-- [end:push]
on_commit "$(git -C work rev-parse HEAD)"

# --8<-- [start:after]
python greet.py
paglets hosts --entry http://127.0.0.1:8765
# --8<-- [end:after]

# Skip re-reading files that have not changed since a full check of their content passed.
# shellcheck shell=bash
# A file's identity is its device, inode, size and modification and change times (ns). Any write
# or rename onto its name changes one of them; the change time is set by the kernel and no user
# can set it back (`touch -d` moves only the modification time). The change time is coarse (a
# clock tick), so identities are recorded only for files that changed more than
# UNCHANGED_SETTLE_SECONDS ago: a write after the check cannot then land in the recorded tick.
UNCHANGED_SETTLE_SECONDS=2

# file_identity FILE...: one identity line per FILE (symbolic links followed); fails if one is missing.
file_identity() { stat -L -c '%d:%i:%s:%.9Y:%.9Z' -- "$@" 2>/dev/null; }

# unchanged_since STAMP FILE...: true when the FILEs have the identities record_unchanged wrote to
# STAMP, so a check of their content made then still holds.
unchanged_since() {
  local stamp=$1 now
  shift
  [[ -s $stamp ]] && now=$(file_identity "$@") && [[ $now == "$(<"$stamp")" ]]
}

# record_unchanged STAMP FILE...: after a full check of the FILEs' content passed, write their
# identities to STAMP; if one changed too recently to be told apart from a later write, remove
# STAMP instead, so the next run checks again.
record_unchanged() {
  local stamp=$1 changed newest=0
  shift
  for changed in $(stat -L -c '%Z' -- "$@" 2>/dev/null || echo "$EPOCHSECONDS"); do
    if ((changed > newest)); then newest=$changed; fi
  done
  if ((newest < EPOCHSECONDS - UNCHANGED_SETTLE_SECONDS)) && file_identity "$@" >"$stamp.tmp"; then
    mv -f "$stamp.tmp" "$stamp"
  else
    rm -f "$stamp" "$stamp.tmp"
  fi
}

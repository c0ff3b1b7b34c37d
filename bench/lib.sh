# Shared by the bench scripts (sourced, not run).
# wait_line FILE REGEX SECONDS [PID]: 0 once a line of FILE matches REGEX; 1 when SECONDS of real
# time pass first, or when PID (if given) exits first. A real-time deadline, not a count of
# sleeps: under valgrind on a loaded machine a start takes longer than on an idle one.
wait_line() {
    local file=$1 re=$2 secs=$3 pid=${4:-} deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        grep -qE "$re" "$file" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            grep -qE "$re" "$file" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.05
    done
    grep -qE "$re" "$file" 2>/dev/null
}

# --- body of the native node script (dssr_singularity/native_node.sh) ---
# Runs once per node, in the job folder, after the generated header above set
# the DSSR_* variables.  Steps: choose the runtime binary, pull the image once
# into its cache under an exclusive lock, create this node's overlay (or use a
# writable tmpfs), run the command in the container, return its exit code.

dssr_log() {
    printf '[dssr node %s %s] %s\n' "${PROCESS_PROCID:-0}" "${PROCESS_NODENAME:-$(hostname)}" "$*" >&2
}

if [ -z "$DSSR_BINARY" ]; then
    if command -v apptainer >/dev/null 2>&1; then
        DSSR_BINARY=apptainer
    else
        DSSR_BINARY=singularity
    fi
fi
case "$(basename "$DSSR_BINARY")" in
    singularity*) DSSR_ENV_PREFIX=SINGULARITYENV_ ;;
    *) DSSR_ENV_PREFIX=APPTAINERENV_ ;;
esac

# The pull: one per image and cache, whatever the number of nodes and jobs.
# The lock is opened read-only so that any user of the shared cache can take it.
dssr_pull() {
    mkdir -p "$DSSR_IMAGE_DIR" "$DSSR_LOCK_DIR" "$DSSR_CACHEDIR" || return 1
    (umask 000 && : >>"$DSSR_LOCK") 2>/dev/null
    (
        flock -x 9 || exit 1
        if [ -s "$DSSR_IMAGE_FILE" ]; then
            exit 0
        fi
        partial="${DSSR_IMAGE_FILE%.sif}.partial-${PROCESS_NODENAME:-node}-$$.sif"
        rm -f "$partial"
        if [ "$DSSR_NEEDS_CREDENTIALS" = 1 ]; then
            if [ -r "$DSSR_SECRETS_FILE" ]; then
                # shellcheck disable=SC1090
                . "$DSSR_SECRETS_FILE"
            fi
            export APPTAINER_DOCKER_USERNAME="${DSSR_PULL_USERNAME:-}" APPTAINER_DOCKER_PASSWORD="${DSSR_PULL_PASSWORD:-}"
            export SINGULARITY_DOCKER_USERNAME="${DSSR_PULL_USERNAME:-}" SINGULARITY_DOCKER_PASSWORD="${DSSR_PULL_PASSWORD:-}"
        fi
        export APPTAINER_CACHEDIR="$DSSR_CACHEDIR" SINGULARITY_CACHEDIR="$DSSR_CACHEDIR"
        dssr_log "pulling $DSSR_IMAGE_SOURCE into $DSSR_IMAGE_FILE"
        # shared images must be readable by every user, private ones by their owner only
        umask "$DSSR_IMAGE_UMASK"
        "$DSSR_BINARY" "$DSSR_VERBOSITY" pull "$partial" "$DSSR_IMAGE_SOURCE" &&
            chmod "$DSSR_IMAGE_MODE" "$partial" && mv -f "$partial" "$DSSR_IMAGE_FILE"
        rc=$?
        if [ "$rc" -ne 0 ]; then
            rm -f "$partial"
        fi
        exit "$rc"
    ) 9<"$DSSR_LOCK"
}

if ! dssr_pull; then
    dssr_log "the image $DSSR_IMAGE_SOURCE could not be pulled"
    exit 125
fi

dssr_args=(-B "$DSSR_JOB_DIR" -B "$DSSR_USER_SCRATCH" --pwd "$DSSR_WORKDIR")
if [ "$DSSR_GPUS" -gt 0 ]; then
    dssr_args+=(--nv)
fi
if [ "$DSSR_OVERLAY_MB" -gt 0 ]; then
    dssr_overlay="$DSSR_JOB_DIR/overlay-${PROCESS_PROCID:-0}.img"
    rm -f "$dssr_overlay"
    trap 'rm -f "$dssr_overlay"' EXIT
    if ! "$DSSR_BINARY" "$DSSR_VERBOSITY" overlay create --size "$DSSR_OVERLAY_MB" "$dssr_overlay"; then
        dssr_log "the overlay image $dssr_overlay could not be created"
        exit 125
    fi
    dssr_args+=(--overlay "$dssr_overlay")
else
    dssr_args+=(--writable-tmpfs)
fi
for dssr_var in "${DSSR_ENVIRONMENT[@]}"; do
    export "${DSSR_ENV_PREFIX}${dssr_var?}"
done

"$DSSR_BINARY" "$DSSR_VERBOSITY" exec "${dssr_args[@]}" "$DSSR_IMAGE_FILE" /bin/sh -c "$DSSR_COMMAND"
dssr_rc=$?
dssr_log "command ended with exit code $dssr_rc"
exit "$dssr_rc"

#!/usr/bin/env bash
# Builds the Docker image of a plain Debian bookworm host booting real systemd, which the
# molecule scenario runs as db1, app1 and files1: debootstrap (minbase) into a temporary
# directory under .build, `docker import`. No image registry is needed.
#   bash scripts/host-image.sh     prints the image name, systemd-s3-backup-host:<recipe hash>
# The tag is a hash of this script and the package list, so a changed recipe builds a new
# image and an unchanged one returns at once. It is also tagged systemd-s3-backup-host:latest.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
declare -F need_debian_packages >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source-path=SCRIPTDIR source=docker.sh
source "$REPO_ROOT/scripts/docker.sh"

HOST_IMAGE_REPO=systemd-s3-backup-host
HOST_IMAGE_SUITE=bookworm
# What every small Debian server has; the roles under test install everything else.
HOST_IMAGE_PACKAGES=systemd,systemd-sysv,dbus,python3,ca-certificates,procps,iproute2,less

# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list), else the CDN.
debian_mirror() {
    local url
    url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' |
        grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)
    printf '%s\n' "${url:-http://deb.debian.org/debian}"
}

# Inside the image: what a container cannot do or does not need is masked, so
# `systemctl is-system-running` says "running" and failures the tests see are real.
configure_rootfs() {
    local root=$1 mirror=$2
    cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $HOST_IMAGE_SUITE main
deb $mirror $HOST_IMAGE_SUITE-updates main
deb ${mirror%/debian*}/debian-security $HOST_IMAGE_SUITE-security main
EOF
    # Package lists go stale; the tests and roles run apt-get update themselves.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
    # Docs and man pages: smaller image, quicker package installs; nothing reads them here.
    cat >"$root/etc/dpkg/dpkg.cfg.d/01-container-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
    # A throwaway container needs no fsync per file (Docker's own Debian images did the same).
    printf 'force-unsafe-io\n' >"$root/etc/dpkg/dpkg.cfg.d/02-container-unsafe-io"
    printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/90-container-no-translations"
    # Each container gets its own id at boot (and docker sets the hostname).
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname"
    # Units for consoles, kernel and hardware that a container has not got.
    local unit
    for unit in getty@tty1.service console-getty.service serial-getty@.service \
        systemd-remount-fs.service systemd-firstboot.service sys-kernel-config.mount \
        sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
        dev-hugepages.mount systemd-modules-load.service systemd-sysctl.service \
        systemd-udevd.service systemd-udev-trigger.service systemd-hwdb-update.service \
        modprobe@.service kmod-static-nodes.service systemd-binfmt.service \
        proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
        systemd-journald-audit.socket systemd-pstore.service; do
        ln -sfn /dev/null "$root/etc/systemd/system/$unit"
    done
    # systemd makes / a shared mount on a host but not in a container, and LoadCredential=
    # needs that: it mounts each unit's credentials in a private namespace and moves them to
    # /run/credentials/<unit>, which stays empty when the move cannot propagate back.
    cat >"$root/etc/systemd/system/container-shared-mounts.service" <<'EOF'
[Unit]
Description=Make mounts shared as on a host (LoadCredential= needs it)
DefaultDependencies=no
ConditionVirtualization=container
Before=sysinit.target local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --make-rshared /

[Install]
WantedBy=sysinit.target
EOF
    mkdir -p "$root/etc/systemd/system/sysinit.target.wants"
    ln -sfn ../container-shared-mounts.service "$root/etc/systemd/system/sysinit.target.wants/container-shared-mounts.service"
}

build_host_image() {
    local recipe hash image
    recipe=$(cat "${BASH_SOURCE[0]}"; printf '%s %s\n' "$HOST_IMAGE_SUITE" "$HOST_IMAGE_PACKAGES")
    hash=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
    image="$HOST_IMAGE_REPO:$hash"
    if ! docker image inspect "$image" >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "building $image needs root (debootstrap)"
        local mirror rootfs started=$SECONDS
        mirror=$(debian_mirror)
        mkdir -p "$REPO_ROOT/.build/debootstrap-cache"
        rootfs=$(mktemp -d "$REPO_ROOT/.build/host-image.XXXXXX")
        # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
        trap "rm -rf '$rootfs'" EXIT
        log "building $image: debootstrap $HOST_IMAGE_SUITE from $mirror (log: .build/host-image.log)"
        if ! debootstrap --variant=minbase --include="$HOST_IMAGE_PACKAGES" \
            --cache-dir="$REPO_ROOT/.build/debootstrap-cache" \
            "$HOST_IMAGE_SUITE" "$rootfs" "$mirror" >"$REPO_ROOT/.build/host-image.log" 2>&1; then
            die "debootstrap failed; the end of .build/host-image.log:
$(tail -n 20 "$REPO_ROOT/.build/host-image.log")"
        fi
        configure_rootfs "$rootfs" "$mirror"
        tar -C "$rootfs" -c . | docker import \
            -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
            - "$image" >/dev/null
        rm -rf "$rootfs"
        trap - EXIT
        log "built $image in $((SECONDS - started))s"
    fi
    docker tag "$image" "$HOST_IMAGE_REPO:latest"
    # Images of older recipes (those still used by a container stay).
    local old
    for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$HOST_IMAGE_REPO"); do
        case $old in "$image" | "$HOST_IMAGE_REPO:latest") ;; *) docker image rm "$old" >/dev/null 2>&1 || true ;; esac
    done
    printf '%s\n' "$image"
}

build_host_image

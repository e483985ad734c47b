#!/usr/bin/env bash
# Real FTP daemons on loopback for tests/ftp.rs.
#
#   .ci/ftpd.sh start   install (if needed) and start vsftpd and pure-ftpd
#   .ci/ftpd.sh stop    stop them (by the PIDs recorded at start)
#
# After `start`, `source /tmp/segsync-ci/ftpd.env` exports:
#   SEGSYNC_TEST_VSFTPD=127.0.0.1:2121    vsftpd: LIST only (no MLSD), a PASV
#                                         reply advertising 127.0.0.2, where
#                                         it does not listen, explicit TLS
#                                         optional (TLS session reuse required)
#   SEGSYNC_TEST_PUREFTPD=127.0.0.1:2122  pure-ftpd: MLSD, explicit TLS
#                                         optional (AUTH TLS)
#   SEGSYNC_TEST_FTPD_USER / _PASSWORD    a local system user both accept
#   SEGSYNC_TEST_FTPD_DIR                 that user's folder (the chroot),
#                                         where tests put their files
#   SEGSYNC_TEST_FTPD_CA                  the CA that signed both daemons'
#                                         certificate (for ca_file)
#
# Needs root (or sudo): it installs packages, creates the user and sets
# its password. Everything listens on 127.0.0.1 only. Running `start`
# twice is harmless: running daemons are left alone. Override the ports
# with VSFTPD_PORT / PUREFTPD_PORT and the state folder with
# SEGSYNC_CI_DIR.
set -euo pipefail

STATE=${SEGSYNC_CI_DIR:-/tmp/segsync-ci}
ENV_FILE=$STATE/ftpd.env
FTP_USER=segsync-ftp
DATA=$STATE/ftp-home
VSFTPD_PORT=${VSFTPD_PORT:-2121}
PUREFTPD_PORT=${PUREFTPD_PORT:-2122}
PUREFTPD=$STATE/pure-ftpd-root/usr/sbin/pure-ftpd

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

log() { echo "ftpd.sh: $*" >&2; }

# Whether the process in the pid file is alive (a zombie left by a
# container without an init that reaps does not count).
running() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -r "/proc/$pid/stat" ] || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

install_packages() {
    if command -v vsftpd >/dev/null && [ -x "$PUREFTPD" ]; then
        return
    fi
    # Refresh the package lists only when they do not know the packages.
    if ! apt-cache show vsftpd pure-ftpd >/dev/null 2>&1; then
        $SUDO apt-get update -qq
    fi
    # Debian's vsftpd and pure-ftpd packages conflict (both provide
    # ftp-server), so vsftpd is installed and pure-ftpd's binary is only
    # unpacked into the state folder, with its libraries installed.
    log "installing vsftpd and pure-ftpd's libraries"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o DPkg::Lock::Timeout=300 --no-install-recommends \
        vsftpd libcap2 libcrypt1 libpam0g libsodium23 libssl3 >/dev/null
    # Debian may start the packaged service on install; ours uses its own
    # configuration, so the packaged one must not hold anything.
    $SUDO service vsftpd stop >/dev/null 2>&1 || true
    log "unpacking pure-ftpd into $STATE/pure-ftpd-root"
    local d
    d=$(mktemp -d)
    chmod 0777 "$d" # apt downloads as its own user
    (cd "$d" && apt-get download -qq pure-ftpd >/dev/null)
    $SUDO mkdir -p "$STATE/pure-ftpd-root"
    $SUDO dpkg-deb -x "$d"/pure-ftpd_*.deb "$STATE/pure-ftpd-root"
    rm -rf "$d"
}

make_user() {
    $SUDO mkdir -p "$STATE" "$DATA"
    if ! id "$FTP_USER" >/dev/null 2>&1; then
        $SUDO useradd --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
            --comment "segsync FTP tests" "$FTP_USER"
    fi
    # Tests (maybe not root) write their fixtures here; the daemons only
    # read. Loopback-only test data, so world-writable is acceptable.
    $SUDO chmod 0777 "$DATA"
    local password
    if [ -s "$STATE/ftpd.password" ]; then
        password=$($SUDO cat "$STATE/ftpd.password")
    else
        password=$(openssl rand -hex 12)
        echo "$password" | $SUDO tee "$STATE/ftpd.password" >/dev/null
        $SUDO chmod 0644 "$STATE/ftpd.password"
    fi
    echo "$FTP_USER:$password" | $SUDO chpasswd
    # vsftpd's packaged PAM service requires a shell from /etc/shells;
    # this one checks the password only.
    printf 'auth required pam_unix.so\naccount required pam_unix.so\nsession required pam_permit.so\n' |
        $SUDO tee /etc/pam.d/segsync-ftp >/dev/null
}

make_certs() {
    [ -s "$STATE/pure-ftpd.pem" ] && return
    log "making a test CA and a certificate for 127.0.0.1"
    local d
    d=$(mktemp -d)
    (
        cd "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=segsync CI CA" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=127.0.0.1" 2>/dev/null
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 3650 -extfile server.ext 2>/dev/null
    )
    $SUDO cp "$d/ca.pem" "$STATE/ftpd-ca.pem"
    cat "$d/server.key" "$d/server.pem" | $SUDO tee "$STATE/pure-ftpd.pem" >/dev/null
    $SUDO chmod 0600 "$STATE/pure-ftpd.pem"
    $SUDO chmod 0644 "$STATE/ftpd-ca.pem"
    rm -rf "$d"
}

start_vsftpd() {
    local pidfile=$STATE/vsftpd.pid
    if running "$pidfile"; then
        log "vsftpd already running (pid $(cat "$pidfile"))"
        return
    fi
    $SUDO mkdir -p /var/run/vsftpd/empty
    $SUDO tee "$STATE/vsftpd.conf" >/dev/null <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VSFTPD_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=NO
chroot_local_user=YES
allow_writeable_chroot=YES
pam_service_name=segsync-ftp
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40099
pasv_address=127.0.0.2
# Explicit TLS, optional, with vsftpd's default demand that data
# connections resume the control connection's TLS session.
ssl_enable=YES
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=YES
rsa_cert_file=$STATE/pure-ftpd.pem
rsa_private_key_file=$STATE/pure-ftpd.pem
use_localtime=NO
# ASCII transfers really convert line ends: a client that forgets TYPE I
# receives other bytes than the file holds.
ascii_download_enable=YES
xferlog_enable=YES
vsftpd_log_file=$STATE/vsftpd.log
EOF
    $SUDO sh -c "vsftpd '$STATE/vsftpd.conf' >>'$STATE/vsftpd.out' 2>&1 & echo \$! >'$pidfile'"
    wait_port "$VSFTPD_PORT" vsftpd "$STATE/vsftpd.out"
    log "vsftpd on 127.0.0.1:$VSFTPD_PORT (pid $(cat "$pidfile"))"
}

start_pureftpd() {
    local pidfile=$STATE/pure-ftpd.pid
    if running "$pidfile"; then
        log "pure-ftpd already running (pid $(cat "$pidfile"))"
        return
    fi
    # -l pam: system accounts (PAM "other", no shell check); -A: chroot everyone; -E: no anonymous;
    # -H: no DNS; -D: list dot files; -Y 1: TLS optional (AUTH TLS);
    # -u 1: the test user's uid is allowed whatever it is.
    $SUDO sh -c "'$PUREFTPD' -S 127.0.0.1,$PUREFTPD_PORT -l pam -A -E -H -D -u 1 \
        -p 40100:40199 -Y 1 -2 '$STATE/pure-ftpd.pem' >>'$STATE/pure-ftpd.out' 2>&1 & \
        echo \$! >'$pidfile'"
    wait_port "$PUREFTPD_PORT" pure-ftpd "$STATE/pure-ftpd.out"
    log "pure-ftpd on 127.0.0.1:$PUREFTPD_PORT (pid $(cat "$pidfile"))"
}

# Waits until something accepts on the port, or fails with the log.
wait_port() {
    local port=$1 name=$2 out=$3
    for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
    log "$name did not start; its output:"
    $SUDO cat "$out" >&2 || true
    exit 1
}

write_env() {
    local password
    password=$($SUDO cat "$STATE/ftpd.password")
    $SUDO tee "$ENV_FILE" >/dev/null <<EOF
export SEGSYNC_TEST_VSFTPD=127.0.0.1:$VSFTPD_PORT
export SEGSYNC_TEST_PUREFTPD=127.0.0.1:$PUREFTPD_PORT
export SEGSYNC_TEST_FTPD_USER=$FTP_USER
export SEGSYNC_TEST_FTPD_PASSWORD=$password
export SEGSYNC_TEST_FTPD_DIR=$DATA
export SEGSYNC_TEST_FTPD_CA=$STATE/ftpd-ca.pem
EOF
    $SUDO chmod 0644 "$ENV_FILE"
    log "wrote $ENV_FILE"
}

stop_one() {
    local name=$1 pidfile=$STATE/$1.pid
    if running "$pidfile"; then
        $SUDO kill "$(cat "$pidfile")"
        log "stopped $name"
    fi
    $SUDO rm -f "$pidfile"
}

case "${1:-}" in
start)
    install_packages
    make_user
    make_certs
    start_vsftpd
    start_pureftpd
    write_env
    ;;
stop)
    stop_one vsftpd
    stop_one pure-ftpd
    $SUDO rm -f "$ENV_FILE"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

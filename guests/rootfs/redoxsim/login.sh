#!/bin/busybox sh
# redox-sim login: Redox's issue banner, the bold `redox login:` prompt, `password:`, `Login incorrect`,
# then `Welcome to Redox OS!` and an ion-style prompt over a real busybox shell.
# Accounts (as on a Redox image): root / password, user / (empty).
# Runs as a session leader with the console tty as its controlling terminal (see /redoxsim/init).
FEEDER_PIDFILE=/run/redoxsim.feeder
# the feeder of the previous session may still be blocked reading the tty: end it before anyone types here
if [ -f "$FEEDER_PIDFILE" ]; then
    old=$(cat "$FEEDER_PIDFILE")
    grep -q login.sh "/proc/$old/cmdline" 2>/dev/null && kill "$old" 2>/dev/null
    rm -f "$FEEDER_PIDFILE" /run/redoxsim.shell.*
fi
stty sane 2>/dev/null
printf '\n########## Redox OS ##########\n'
printf '# Login with the following:  #\n'
printf '# `user`                     #\n'
printf '# `root`:`password`          #\n'
printf '##############################\n\n'
while :; do
    printf '\033[1mredox login:\033[0m '
    read -r name || exit 0
    [ -n "$name" ] || continue
    stty -echo          # before the prompt, so that a fast typist's password is never echoed
    printf 'password: '
    read -r pw || exit 0
    stty echo
    printf '\n'
    case "$name:$pw" in
    root:password|user:) break ;;
    esac
    sleep 1
    printf 'Login incorrect\n'
done
printf '\nWelcome to Redox OS!\n\n'
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
# The shell is a real busybox ash, in the foreground of this session (so Ctrl-C reaches the command it runs).
# It reads its commands from a fifo fed, line by line, from the tty (which echoes what is typed, in canonical mode),
# so busybox line editing stays off: no `\e[6n` cursor queries and no busybox banner (stdout starts on /dev/null;
# /redoxsim/shrc, read at startup through $ENV, points stdout back at the tty).  The feeder runs in the background
# (SIGINT ignored); it reads each line to its end with no timeout (busybox `read -t` counts from its start and drops
# what it read when it runs out, which cut a long line arriving late in the second in two), and ends on the first
# line after the shell is gone (no reader on the fifo) or when the next login ends it (above).
export ENV=/redoxsim/shrc
TTY=$(tty)
FIFO=/run/redoxsim.shell.$$
rm -f "$FIFO"; mkfifo "$FIFO"
feeder() {
    exec 3> "$FIFO"
    while read -r line; do printf '%s\n' "$line" >&3 || break; done
    rm -f "$FIFO" "$FEEDER_PIDFILE"
}
feeder < "$TTY" &
echo $! > "$FEEDER_PIDFILE"
if [ "$name" = root ]; then
    export HOME=/root USER=root PS1='root:\w# '
    cd /
    exec sh +m -i < "$FIFO" > /dev/null
else
    mkdir -p /home/user && chown 1000:1000 /home/user
    cd /home/user
    export HOME=/home/user USER=user PS1='user:\w$ '
    exec su -s /bin/sh user -c 'exec sh +m -i' < "$FIFO" > /dev/null
fi

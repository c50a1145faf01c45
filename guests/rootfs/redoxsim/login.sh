#!/bin/busybox sh
# redox-sim login: Redox's issue banner, the bold `redox login:` prompt, `password:`, `Login incorrect`,
# then `Welcome to Redox OS!` and an ion-style prompt over a real busybox shell.
# Accounts (as on a Redox image): root / password, user / (empty).
# Runs as a session leader with the console tty as its controlling terminal (see /redoxsim/init).
FEEDER_PIDFILE=/run/redoxsim.feeder
# a feeder of the previous session may still be finishing its last read: let it go first
while [ -f "$FEEDER_PIDFILE" ] && kill -0 "$(cat "$FEEDER_PIDFILE")" 2>/dev/null; do sleep 0.2; done
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
# (SIGINT ignored) and ends within a second of the shell.
export ENV=/redoxsim/shrc
TTY=$(tty)
FIFO=/run/redoxsim.shell.$$
rm -f "$FIFO"; mkfifo "$FIFO"
feeder() { # feeder SHELL_PID
    exec 3> "$FIFO"
    while kill -0 "$1" 2>/dev/null; do
        if read -r -t 1 line; then printf '%s\n' "$line" >&3; fi
    done
    rm -f "$FIFO" "$FEEDER_PIDFILE"
}
feeder $$ < "$TTY" &
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

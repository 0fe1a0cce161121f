#!/bin/sh
# adduser for hoist's busybox test image. Debian's busybox-static is built without the
# adduser and addgroup applets, which Docker's busybox image has and Dockerfiles use
# (`RUN adduser -D user`); this does what busybox's applet does, for the same flags.
set -e
usage() {
  echo "usage: adduser [-h DIR] [-g GECOS] [-s SHELL] [-G GROUP] [-S] [-D] [-H] [-u UID] [-k SKEL] USER [GROUP]" >&2
  exit 1
}
home='' gecos='Linux User,,,' shell=/bin/sh group='' system='' nohome='' uid=''
while getopts h:g:s:G:SDHu:k: opt; do
  case $opt in
    h) home=$OPTARG ;;
    g) gecos=$OPTARG ;;
    s) shell=$OPTARG ;;
    G) group=$OPTARG ;;
    S) system=1 ;;
    D | k) ;;
    H) nohome=1 ;;
    u) uid=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
user=$1
# `adduser USER GROUP` adds an existing user to an existing group.
[ $# -lt 2 ] || exec addgroup "$user" "$2"
if cut -d: -f1 /etc/passwd | grep -qxF "$user"; then
  echo "adduser: user '$user' in use" >&2
  exit 1
fi
used() { cut -d: -f3 "$1" | grep -qxF "$2"; }
if [ -z "$uid" ]; then
  if [ -n "$system" ]; then uid=100; else uid=1000; fi
  while used /etc/passwd "$uid" || { [ -z "$group" ] && used /etc/group "$uid"; }; do
    uid=$((uid + 1))
  done
fi
if [ -z "$group" ]; then
  if [ -n "$system" ]; then group=nogroup; else
    addgroup -g "$uid" "$user"
    group=$user
  fi
fi
gid=$(grep "^$group:" /etc/group | head -n1 | cut -d: -f3)
if [ -z "$gid" ]; then
  echo "adduser: unknown group $group" >&2
  exit 1
fi
[ -n "$home" ] || home=/home/$user
echo "$user:x:$uid:$gid:$gecos:$home:$shell" >> /etc/passwd
[ ! -f /etc/shadow ] || echo "$user:!:$(($(date +%s) / 86400)):0:99999:7:::" >> /etc/shadow
if [ -z "$nohome" ]; then
  mkdir -p "$home"
  chown "$uid:$gid" "$home"
fi

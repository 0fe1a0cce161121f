#!/bin/sh
# addgroup for hoist's busybox test image (Debian's busybox-static has no addgroup applet):
# `addgroup [-g GID] [-S] GROUP` makes a group, `addgroup USER GROUP` adds a member.
set -e
usage() {
  echo "usage: addgroup [-g GID] [-S] GROUP | addgroup USER GROUP" >&2
  exit 1
}
gid='' system=''
while getopts g:S opt; do
  case $opt in
    g) gid=$OPTARG ;;
    S) system=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
if [ $# -ge 2 ]; then
  user=$1 group=$2
  if ! cut -d: -f1 /etc/passwd | grep -qxF "$user"; then
    echo "addgroup: unknown user $user" >&2
    exit 1
  fi
  line=$(grep "^$group:" /etc/group | head -n1) || true
  if [ -z "$line" ]; then
    echo "addgroup: unknown group $group" >&2
    exit 1
  fi
  members=${line##*:}
  case ",$members," in *",$user,"*) exit 0 ;; esac
  if [ -z "$members" ]; then new=$line$user; else new=$line,$user; fi
  sed -i "s|^$group:.*|$new|" /etc/group
  exit 0
fi
group=$1
if cut -d: -f1 /etc/group | grep -qxF "$group"; then
  echo "addgroup: group '$group' in use" >&2
  exit 1
fi
if [ -z "$gid" ]; then
  if [ -n "$system" ]; then gid=100; else gid=1000; fi
  while cut -d: -f3 /etc/group | grep -qxF "$gid"; do gid=$((gid + 1)); done
fi
echo "$group:x:$gid:" >> /etc/group

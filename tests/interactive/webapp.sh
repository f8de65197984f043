# The interactive test app for busybox images (tests/interactive/webapp.py's twin, for the real
# Apptainer on the Slurm 26.05 cluster whose test images hold busybox only).  One connection:
# `busybox nc -ll -p "$JARVICE_SERVICE_PORT" -e sh webapp.sh TOKEN` runs it with the socket on
# stdin/stdout.  It answers GET /?token=TOKEN[&...] (the WebSocket echo page), GET /whoami and a
# WebSocket echo on /ws (RFC 6455, text frames shorter than 126 bytes).
token=$1
cr=$(printf '\r')
read -r method target version
key=""
upgrade=""
while read -r line; do
    line=${line%"$cr"}
    [ -z "$line" ] && break
    name=$(echo "${line%%:*}" | tr 'A-Z' 'a-z')
    value=${line#*: }
    case "$name" in
        sec-websocket-key) key=$value ;;
        upgrade) upgrade=$(echo "$value" | tr 'A-Z' 'a-z') ;;
    esac
done
reply() {  # STATUS TYPE BODY
    printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
        "$1" "$2" "$(printf '%s' "$3" | wc -c)" "$3"
}
path=${target%%\?*}
query=${target#"$path"}
node=$(hostname)
case "$path" in
    /ws)
        [ "$upgrade" = websocket ] || { reply "400 Bad Request" text/plain "not a websocket"; exit 0; }
        accept=$(printf '%s' "${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -c1-40 | xxd -r -p | base64)
        printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"
        while :; do
            set -- $(dd bs=1 count=2 2>/dev/null | od -An -tu1)
            [ $# -eq 2 ] || exit 0
            opcode=$(($1 & 15))
            length=$(($2 & 127))
            [ "$opcode" = 8 ] && { printf '\210\000'; exit 0; }
            [ "$length" -lt 126 ] || exit 0
            set -- $(dd bs=1 count=4 2>/dev/null | od -An -tu1)
            m0=$1 m1=$2 m2=$3 m3=$4
            out=""
            i=0
            for byte in $(dd bs=1 count="$length" 2>/dev/null | od -An -tu1 -v); do
                case $((i % 4)) in 0) m=$m0 ;; 1) m=$m1 ;; 2) m=$m2 ;; *) m=$m3 ;; esac
                out="$out\\$(printf '%03o' $((byte ^ m)))"
                i=$((i + 1))
            done
            printf "\\$(printf '%03o' $((128 | opcode)))\\$(printf '%03o' $((length + 5)))echo:$out"
        done
        ;;
    /whoami)
        digest=$(sha256sum /etc/JARVICE/random128.txt 2>/dev/null | cut -c1-64)
        reply "200 OK" application/json "{\"node\": \"$node\", \"port\": \"$JARVICE_SERVICE_PORT\", \"etc_jarvice\": {\"128\": \"$digest\"}, \"image\": \"$(cat /etc/dssr-image 2>/dev/null)\"}"
        ;;
    /)
        case "$query" in
            "?token=$token" | "?token=$token&"*) ;;
            *) reply "403 Forbidden" text/plain "wrong token"; exit 0 ;;
        esac
        reply "200 OK" "text/html; charset=utf-8" "<!doctype html>
<html><head><meta charset=\"utf-8\"><title>dssr interactive test</title></head>
<body style=\"font: 28px sans-serif; margin: 40px\">
<h1>dssr interactive test app (busybox, real Apptainer)</h1>
<p>node: <b>$node</b></p>
<div id=\"result\" style=\"padding: 20px; background: #fdd\">waiting for the WebSocket echo...</div>
<script>
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const sent = 'ping-' + Math.random().toString(36).slice(2);
const box = document.getElementById('result');
const ws = new WebSocket(url);
ws.onopen = () => ws.send(sent);
ws.onmessage = (event) => {
  box.textContent = (event.data === 'echo:' + sent ? 'echo ok: ' : 'echo wrong: ') + event.data;
  if (event.data === 'echo:' + sent) box.style.background = '#9f9';
  ws.close();
};
ws.onerror = () => { box.textContent = 'websocket error'; };
</script></body></html>"
        ;;
    *) reply "404 Not Found" text/plain "no such page" ;;
esac

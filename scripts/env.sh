# Sourced by the other scripts: run from the repository root with Go on PATH.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for d in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin"; do
	case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && PATH="$PATH:$d" ;; esac
done
export PATH
# Debian's Go is older than go.mod asks for; this fetches the right
# toolchain through the module proxy.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

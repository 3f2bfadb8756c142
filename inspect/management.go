package inspect

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// management is a client of RabbitMQ's management HTTP API (the
// rabbitmq_management plugin): the only way to list queues and to see
// unacked counts and rates. Credentials go in a header, never in a URL,
// so that no error can show them.
type management struct {
	base       string // scheme://host:port[/prefix], without user info
	user, pass string
	vhost      string
	client     *http.Client
}

// newManagement returns the management client for brokerURL: the
// management API on the broker's host (http on 15672 for amqp://, https on
// 15671 for amqps://) with the broker's user, password and vhost. override
// replaces scheme, host and path, and the credentials if it has some.
// tlsCfg (may be nil) serves https too, unless client (may be nil) is
// given.
func newManagement(brokerURL, override string, tlsCfg *tls.Config, client *http.Client) (*management, error) {
	bu, err := url.Parse(brokerURL)
	if err != nil || bu.Host == "" {
		return nil, errors.New("cannot derive the management API's address from the broker URL: give its URL (Config.Management)")
	}
	m := &management{user: "guest", pass: "guest", vhost: "/", client: client}
	if m.client == nil {
		m.client = &http.Client{}
		if tlsCfg != nil {
			m.client.Transport = &http.Transport{TLSClientConfig: tlsCfg.Clone(), Proxy: http.ProxyFromEnvironment}
		}
	}
	if bu.User != nil {
		m.user = bu.User.Username()
		m.pass, _ = bu.User.Password()
	}
	// As the AMQP client reads it: the path after the first slash, "/" if
	// none.
	if len(bu.Path) > 1 {
		m.vhost = bu.Path[1:]
	}
	if override == "" {
		scheme, port := "http", "15672"
		if bu.Scheme == "amqps" {
			scheme, port = "https", "15671"
		}
		m.base = scheme + "://" + joinHostPort(bu.Hostname(), port)
		return m, nil
	}
	mu, err := url.Parse(override)
	if err != nil || (mu.Scheme != "http" && mu.Scheme != "https") || mu.Host == "" {
		return nil, fmt.Errorf("management API %q: want an http:// or https:// URL", redactURL(override))
	}
	if mu.User != nil {
		m.user = mu.User.Username()
		m.pass, _ = mu.User.Password()
	}
	m.base = mu.Scheme + "://" + mu.Host + strings.TrimSuffix(mu.EscapedPath(), "/")
	return m, nil
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// redactURL drops the user info of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

// mgmtQueue is the part of a queue object of GET /api/queues/{vhost} that
// warren shows. The counts are pointers because the API leaves them out
// until the broker has emitted the queue's first statistics (every 5s by
// default, so for a few seconds after a queue is declared or the plugin
// enabled): absent is not zero.
type mgmtQueue struct {
	Name      string `json:"name"`
	Ready     *int   `json:"messages_ready"`
	Unacked   *int   `json:"messages_unacknowledged"`
	Consumers *int   `json:"consumers"`
	Stats     struct {
		Publish    *mgmtRate `json:"publish_details"`
		DeliverGet *mgmtRate `json:"deliver_get_details"`
	} `json:"message_stats"`
}

type mgmtRate struct {
	Rate float64 `json:"rate"`
}

// mgmtColumns trims the answer to what mgmtQueue reads.
const mgmtColumns = "name,messages_ready,messages_unacknowledged,consumers,message_stats.publish_details.rate,message_stats.deliver_get_details.rate"

// queues returns every queue of the vhost.
func (m *management) queues(ctx context.Context) ([]mgmtQueue, error) {
	u := m.base + "/api/queues/" + url.PathEscape(m.vhost) + "?columns=" + url.QueryEscape(mgmtColumns)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		msg := "HTTP " + strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			msg += " (the broker user needs the monitoring or management tag)"
		case http.StatusNotFound:
			msg += fmt.Sprintf(" (no vhost %q, or not a management API)", m.vhost)
		}
		return nil, errors.New(msg)
	}
	var qs []mgmtQueue
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&qs); err != nil {
		return nil, fmt.Errorf("decode the answer of %s: %w", m.base, err)
	}
	return qs, nil
}

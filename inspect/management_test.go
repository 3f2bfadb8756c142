package inspect

import "testing"

func TestManagementAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		broker, override        string
		base, user, pass, vhost string
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", "", "http://127.0.0.1:15672", "guest", "guest", "/"},
		{"amqp://rabbit.internal", "", "http://rabbit.internal:15672", "guest", "guest", "/"},
		{"amqps://ops:p%40ss@mq.example.com:5671/prod", "", "https://mq.example.com:15671", "ops", "p@ss", "prod"},
		{"amqp://ops:pw@[::1]:5672/%2f", "", "http://[::1]:15672", "ops", "pw", "/"},
		{"amqp://ops:pw@h/", "http://admin:root@mgmt:8080/rabbit/", "http://mgmt:8080/rabbit", "admin", "root", "/"},
		{"amqp://ops:pw@h/v", "https://mgmt", "https://mgmt", "ops", "pw", "v"},
	} {
		m, err := newManagement(tc.broker, tc.override, nil, nil)
		if err != nil {
			t.Errorf("%s %s: %v", tc.broker, tc.override, err)
			continue
		}
		if m.base != tc.base || m.user != tc.user || m.pass != tc.pass || m.vhost != tc.vhost {
			t.Errorf("%s %s: base %s user %s pass %s vhost %s", tc.broker, tc.override, m.base, m.user, m.pass, m.vhost)
		}
	}
}

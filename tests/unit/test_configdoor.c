/*
 * config_load's front-door keys (accept-proxy, sni, allow, deny; issue 16)
 * and the rules on shared listen addresses (src/conflisten.c).  As in
 * test_config.c, each case is written to a temporary file and loaded, and
 * errors are checked for their exact "file:LINE: " prefix and a word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config.h"

#include "configcase.h"

/* accept-proxy, sni, allow, deny (issue 16): values, defaults, lower case. */
static void
test_frontdoor_keys(void **state)
{
	struct lbd_config *conf;
	struct lbd_service_conf *svc;
	struct sockaddr_in sin = { .sin_family = AF_INET };

	(void)state;
	conf = load_ok(SERVICE_HEAD BACKEND_A
	    "  accept-proxy = true\n"
	    "  sni = { \"Exam.Example.COM\", \"*.example.org\" }\n"
	    "  allow = { \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\" }\n"
	    "  deny = { \"10.1.0.0/16\" }\n"
	    "}\n"
	    "service plain {\n"
	    "  listen = { \"127.0.0.1:8081\" }\n"
	    BACKEND_A
	    "}\n");
	svc = &conf->services[0];
	assert_true(svc->accept_proxy);
	assert_int_equal(svc->nsni, 2);
	assert_string_equal(svc->sni[0], "exam.example.com");
	assert_string_equal(svc->sni[1], "*.example.org");
	assert_int_equal(svc->allow.n, 3);
	assert_int_equal(svc->deny.n, 1);
	assert_int_equal(inet_pton(AF_INET, "10.2.3.4", &sin.sin_addr), 1);
	assert_true(cidr_set_contains(&svc->allow, (struct sockaddr *)&sin));
	assert_false(cidr_set_contains(&svc->deny, (struct sockaddr *)&sin));
	assert_int_equal(inet_pton(AF_INET, "10.1.3.4", &sin.sin_addr), 1);
	assert_true(cidr_set_contains(&svc->deny, (struct sockaddr *)&sin));
	svc = &conf->services[1];
	assert_false(svc->accept_proxy);
	assert_int_equal(svc->nsni, 0);
	assert_null(svc->sni);
	assert_int_equal(svc->allow.n, 0);
	assert_int_equal(svc->deny.n, 0);
	config_free(conf);
}

static void
test_frontdoor_bad_values(void **state)
{
	(void)state;
	expect_error(SERVICE_HEAD BACKEND_A "  allow = { \"10.0.0.1/8\" }\n}\n", 4,
	    "allow \"10.0.0.1/8\": address has bits set past the prefix length");
	expect_error(SERVICE_HEAD BACKEND_A "  deny = { \"10.0.0.0/33\" }\n}\n", 4,
	    "prefix length must be 0..32");
	expect_error(SERVICE_HEAD BACKEND_A "\n  deny = { \"::1\", \"nope\" }\n}\n", 5,
	    "deny \"nope\": not an IPv4 or IPv6 address");
	expect_error(SERVICE_HEAD BACKEND_A "  sni = { \"127.0.0.1\" }\n}\n", 4,
	    "sni \"127.0.0.1\": not a host name");
	expect_error(SERVICE_HEAD BACKEND_A "  sni = { \"a.*.example.com\" }\n}\n", 4,
	    "not a host name");
	expect_error(SERVICE_HEAD BACKEND_A "  sni = { \"under_score.example\" }\n}\n", 4,
	    "not a host name");
	expect_error(SERVICE_HEAD BACKEND_A "  accept-proxy = \"maybe\"\n}\n", 4,
	    "accept-proxy");
}

/* Two sites and a default on one address; `sni` on a service alone is fine too. */
#define SNI_SERVICE(name, port, names) \
	"service " name " {\n" \
	"  listen = { \"127.0.0.1:" port "\" }\n" \
	names \
	BACKEND_A \
	"}\n"

static void
test_shared_address(void **state)
{
	struct lbd_config *conf;

	(void)state;
	conf = load_ok(SNI_SERVICE("exam", "8443", "  sni = { \"exam.example.com\" }\n")
	    SNI_SERVICE("org", "8443", "  sni = { \"*.example.org\", \"example.org\" }\n")
	    SNI_SERVICE("rest", "8443", "")
	    SNI_SERVICE("lone", "8444", "  sni = { \"lone.example.com\" }\n"));
	assert_int_equal(conf->nservices, 4);
	config_free(conf);
	/* Without a default; the same name again on another address. */
	conf = load_ok(SNI_SERVICE("exam", "8443", "  sni = { \"exam.example.com\" }\n")
	    SNI_SERVICE("org", "8443", "  sni = { \"www.example.org\" }\n")
	    SNI_SERVICE("exam2", "8444", "  sni = { \"exam.example.com\" }\n"));
	config_free(conf);
}

static void
test_shared_address_errors(void **state)
{
	(void)state;
	/* Two services without sni on one address: the line of the second. */
	expect_error(SNI_SERVICE("exam", "8443", "  sni = { \"exam.example.com\" }\n")
	    SNI_SERVICE("a", "8443", "")
	    SNI_SERVICE("b", "8443", ""), 10,
	    "service b: listen address 127.0.0.1:8443 is already used by service a (line 6)");
	/* One name twice, in another case: the line of the second claimant. */
	expect_error(SNI_SERVICE("exam", "8443", "  sni = { \"exam.example.com\" }\n")
	    SNI_SERVICE("again", "8443", "  sni = { \"x.example\", \"EXAM.example.com\" }\n"),
	    6, "already claimed by service exam (line 1)");
	expect_error(SNI_SERVICE("w1", "8443", "  sni = { \"*.example.org\" }\n")
	    SNI_SERVICE("w2", "8443", "  sni = { \"*.Example.org\" }\n"),
	    6, "sni name \"*.example.org\" on 127.0.0.1:8443 is already claimed by service w1");
	/* The PROXY header comes first: all services on an address agree. */
	expect_error(SNI_SERVICE("exam", "8443", "  sni = { \"exam.example.com\" }\n")
	    SNI_SERVICE("rest", "8443", "  accept-proxy = true\n"),
	    6, "accept-proxy differs from service exam (line 1)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_frontdoor_keys, teardown_case),
		cmocka_unit_test_teardown(test_frontdoor_bad_values, teardown_case),
		cmocka_unit_test_teardown(test_shared_address, teardown_case),
		cmocka_unit_test_teardown(test_shared_address_errors, teardown_case),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

/*
 * doorconf (src/doorconf.c): a configuration loaded by config_load becomes
 * one front door per listen address, and real ClientHellos
 * (tests/unit/sni_vectors.h) reach the services the file names.
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

#include "doorconf.h"
#include "sni_vectors.h"

static const char config_text[] =
    "service exam {\n"
    "  listen = { \"127.0.0.1:8443\", \"127.0.0.1:9443\" }\n"
    "  sni = { \"EXAM.example.com\" }\n"
    "  deny = { \"127.0.0.2\" }\n"
    "  backend a { address = \"127.0.0.1:9001\" }\n"
    "}\n"
    "service org {\n"
    "  listen = { \"127.0.0.1:8443\" }\n"
    "  sni = { \"*.example.org\" }\n"
    "  backend a { address = \"127.0.0.1:9001\" }\n"
    "}\n"
    "service rest {\n"
    "  listen = { \"127.0.0.1:8443\" }\n"
    "  backend a { address = \"127.0.0.1:9001\" }\n"
    "}\n"
    "service plain {\n"
    "  listen = { \"127.0.0.1:8080\" }\n"
    "  backend a { address = \"127.0.0.1:9001\" }\n"
    "}\n"
    "service behind {\n"
    "  listen = { \"127.0.0.1:8081\" }\n"
    "  accept-proxy = true\n"
    "  backend a { address = \"127.0.0.1:9001\" }\n"
    "}\n";

static struct lbd_config *
load(void)
{
	char path[] = "/tmp/lbd-test-doorconf-XXXXXX";
	struct lbd_config *conf;
	FILE *fp;
	int fd;

	assert_true((fd = mkstemp(path)) != -1);
	assert_non_null(fp = fdopen(fd, "w"));
	assert_true(fputs(config_text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	conf = config_load(path, stderr);
	unlink(path);
	assert_non_null(conf);
	return conf;
}

/* The service name a connection from client with bytes buf lands on, or NULL. */
static const char *
land(const struct lbd_config *conf, const struct doorconf *dc, const char *client,
    const void *buf, size_t len)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct frontdoor door;
	struct frontdoor_result res;

	assert_int_equal(inet_pton(AF_INET, client, &peer.sin_addr), 1);
	frontdoor_init(&door, &dc->conf, (struct sockaddr *)&peer, sizeof(peer));
	if (frontdoor_feed(&door, buf, len, &res) != FRONTDOOR_ACCEPT)
		return NULL;
	assert_true(res.service < conf->nservices);
	return conf->services[res.service].name;
}

static void
test_shared_address(void **state)
{
	struct lbd_config *conf = load();
	struct doorconf dc;

	(void)state;
	/* 127.0.0.1:8443, the first listen address of "exam". */
	assert_int_equal(doorconf_build(&dc, conf, &conf->services[0].listen[0]), 0);
	assert_int_equal(dc.conf.ncandidates, 3);
	assert_true(dc.needed);
	assert_string_equal(land(conf, &dc, "127.0.0.1", openssl_tls13_sni,
	    sizeof(openssl_tls13_sni)), "exam");
	assert_string_equal(land(conf, &dc, "127.0.0.1", curl_tls13_sni,
	    sizeof(curl_tls13_sni)), "org");
	assert_string_equal(land(conf, &dc, "127.0.0.1", openssl_tls12_nosni,
	    sizeof(openssl_tls12_nosni)), "rest");
	assert_string_equal(land(conf, &dc, "127.0.0.1", "GET / HTTP/1.0\r\n", 16), "rest");
	assert_null(land(conf, &dc, "127.0.0.2", openssl_tls13_sni,
	    sizeof(openssl_tls13_sni)));
	assert_string_equal(land(conf, &dc, "127.0.0.2", curl_tls12_sni,
	    sizeof(curl_tls12_sni)), "org");
	doorconf_free(&dc);
	/* 127.0.0.1:9443: exam alone, by name only. */
	assert_int_equal(doorconf_build(&dc, conf, &conf->services[0].listen[1]), 0);
	assert_int_equal(dc.conf.ncandidates, 1);
	assert_string_equal(land(conf, &dc, "127.0.0.1", openssl_tls12_sni,
	    sizeof(openssl_tls12_sni)), "exam");
	assert_null(land(conf, &dc, "127.0.0.1", curl_tls12_sni, sizeof(curl_tls12_sni)));
	doorconf_free(&dc);
	config_free(conf);
}

static void
test_plain_and_proxy(void **state)
{
	static const char hdr[] = "PROXY TCP4 192.0.2.1 127.0.0.1 5000 8081\r\n";
	struct lbd_config *conf = load();
	struct doorconf dc;
	struct lbd_sockaddr nowhere;

	(void)state;
	/* A plain service: nothing to do, the worker may skip the door. */
	assert_int_equal(doorconf_build(&dc, conf, &conf->services[3].listen[0]), 0);
	assert_false(dc.needed);
	assert_string_equal(land(conf, &dc, "127.0.0.1", NULL, 0), "plain");
	doorconf_free(&dc);
	assert_int_equal(doorconf_build(&dc, conf, &conf->services[4].listen[0]), 0);
	assert_true(dc.needed);
	assert_null(land(conf, &dc, "127.0.0.1", "GET", 3));
	assert_string_equal(land(conf, &dc, "127.0.0.1", hdr, strlen(hdr)), "behind");
	doorconf_free(&dc);
	/* An address no service listens on. */
	nowhere = conf->services[3].listen[0];
	((struct sockaddr_in *)&nowhere.ss)->sin_port = htons(1);
	assert_int_equal(doorconf_build(&dc, conf, &nowhere), -1);
	doorconf_free(&dc);
	config_free(conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_address),
		cmocka_unit_test(test_plain_and_proxy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* daemon/api/certificates.c: /1.0/certificates, LXD's trust store: list, add (by a
 * trusted caller with a certificate or as a token; by an untrusted caller with the trust
 * password or a token, adding its own TLS client certificate), show, edit, delete. */
#define LOG_CATEGORY "certificates"
#include <string.h>

#include "daemon/api/api.h"
#include "daemon/db/db.h"
#include "daemon/https.h"
#include "daemon/trust.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "lib/trust_token.h"
#include "lib/util.h"

static int get_certificates(struct api_request *req, struct api_response *resp,
			    struct berth_error *err)
{
	json_auto_t *certs = NULL;
	json_t *out, *c;
	size_t i;
	int r = db_certificate_list(req->d->db, &certs, err);

	if (r < 0)
		return r;
	/* A restricted client sees its own certificate only. */
	if (req->client && req->client->restricted) {
		json_t *own = json_array();

		json_array_foreach(certs, i, c)
			if (streq(berth_json_string(c, "fingerprint") ?: "",
				  req->client->fingerprint))
				json_array_append(own, c);
		json_decref(certs);
		certs = own;
	}
	if (req->recursion > 0)
		return api_sync(resp, TAKE_PTR(certs));
	out = json_array();
	json_array_foreach(certs, i, c)
		json_array_append_new(out, json_sprintf("/1.0/certificates/%s",
							berth_json_string(c, "fingerprint")));
	return api_sync(resp, out);
}

static int check_fields(const json_t *body, struct berth_error *err)
{
	const char *type = berth_json_string(body, "type");
	json_t *projects = json_object_get(body, "projects");
	json_t *p;
	size_t i;

	if (type && *type && !streq(type, "client") && !streq(type, "metrics"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Unknown certificate type \"%s\"", type);
	if (projects && !json_is_null(projects) && !json_is_array(projects))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "\"projects\" must be a list of project names");
	json_array_foreach(projects, i, p)
		if (!json_is_string(p))
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "\"projects\" must be a list of project names");
	return 0;
}

/* The stored object from a request's fields. */
static json_t *cert_object(const json_t *fields, const char *fingerprint, const char *pem,
			   const char *default_name)
{
	const char *name = berth_json_string(fields, "name");
	const char *type = berth_json_string(fields, "type");
	json_t *projects = json_object_get(fields, "projects");

	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}", "fingerprint", fingerprint, "type",
			 type && *type ? type : "client", "name",
			 name && *name ? name : default_name, "certificate", pem, "restricted",
			 json_is_true(json_object_get(fields, "restricted")), "projects",
			 json_is_array(projects) ? json_deep_copy(projects) : json_array());
}

/* Without a name, a certificate is named after its subject's common name, as in LXD. */
static void name_from_cn(json_t *cert)
{
	_cleanup_free_ char *cn = NULL;

	if (*berth_json_string(cert, "name"))
		return;
	if (berth_tls_cert_common_name(berth_json_string(cert, "certificate"), &cn) == 0)
		json_object_set_new(cert, "name", json_string(cn));
}

static int add_certificate(struct api_request *req, struct api_response *resp, json_t *cert,
			   struct berth_error *err)
{
	_cleanup_free_ char *url = NULL;
	int r = db_certificate_add(req->d->db, cert, err);

	if (r < 0)
		return r;
	r = trust_reload(req->d->trust, err);
	if (r < 0)
		return r;
	url = berth_strdup_printf("/1.0/certificates/%s", berth_json_string(cert, "fingerprint"));
	if (!url)
		return -ENOMEM;
	log_info("Added certificate \"%s\" (%s) to the trust store",
		 berth_json_string(cert, "name"), berth_json_string(cert, "fingerprint"));
	return api_created(resp, url);
}

static int create_token(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	struct operation_spec spec;
	json_auto_t *addresses = https_addresses(req->d->https);
	uint64_t expiry = 0;
	int r;

	if (!berth_json_string(req->body, "name") || !*berth_json_string(req->body, "name"))
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "A client name must be provided for the token");
	r = api_remote_token_expiry(req, 0, &expiry, err);
	if (r < 0)
		return r;
	/* The request as LXD keeps it in the token's metadata, every field present. */
	r = trust_token_spec(
		req->d->trust,
		json_pack("{s:s, s:s, s:b, s:o, s:s, s:s, s:b}", "name",
			  berth_json_string(req->body, "name"), "type",
			  berth_json_string(req->body, "type") ?: "client", "restricted",
			  json_is_true(json_object_get(req->body, "restricted")), "projects",
			  json_is_array(json_object_get(req->body, "projects"))
				  ? json_deep_copy(json_object_get(req->body, "projects"))
				  : json_array(),
			  "certificate", "", "password", "", "token", 1),
		expiry, &spec);
	if (r < 0)
		return berth_error_set(err, r, BERTH_ERR_INTERNAL, "Cannot make a token");
	spec.project = api_event_project(req);
	spec.resources = NULL;
	{
		void *data = spec.data;

		r = operation_create(req->d->ops, &spec, &resp->op);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Failed to create operation");
		operation_set_metadata(resp->op,
				       trust_token_metadata(data, https_fingerprint(req->d->https),
							    addresses));
	}
	resp->type = API_ASYNC;
	return 0;
}

/* An untrusted caller proves the password or a token; its own certificate is added. */
static int add_self(struct api_request *req, struct api_response *resp, struct berth_error *err)
{
	const struct trust_client *c = req->client;
	const char *secret = berth_json_string(req->body, "trust_token");
	json_auto_t *token_req = NULL;
	json_auto_t *config = NULL;
	json_auto_t *cert = NULL;
	const char *stored;
	int r;

	if (!secret || !*secret)
		secret = berth_json_string(req->body, "password");
	if (!c->cert_pem)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "No client certificate provided");
	if (!secret || !*secret)
		return berth_error_set(err, -EACCES, BERTH_ERR_FORBIDDEN, "not authorized");
	r = trust_token_consume(req->d->trust, secret, &token_req);
	if (r == 0) {
		cert = cert_object(token_req, c->fingerprint, c->cert_pem, "");
		return cert ? add_certificate(req, resp, cert, err) : -ENOMEM;
	}
	r = db_server_config_get(req->d->db, &config, err);
	if (r < 0)
		return r;
	stored = berth_json_string(config, "core.trust_password");
	if (!stored || berth_tls_password_check(stored, secret) != 0) {
		log_info("Refused a trust password or token from an untrusted client");
		return berth_error_set(err, -EACCES, BERTH_ERR_FORBIDDEN, "not authorized");
	}
	/* A password grants an unrestricted client certificate, as in LXD. */
	cert = cert_object(NULL, c->fingerprint, c->cert_pem, "");
	if (cert && berth_json_string(req->body, "name"))
		json_object_set(cert, "name", json_object_get(req->body, "name"));
	if (cert)
		name_from_cn(cert);
	return cert ? add_certificate(req, resp, cert, err) : -ENOMEM;
}

static int post_certificates(struct api_request *req, struct api_response *resp,
			     struct berth_error *err)
{
	const struct trust_client *c = req->client;
	const char *b64;
	_cleanup_free_ unsigned char *der = NULL;
	_cleanup_free_ char *pem = NULL;
	json_auto_t *cert = NULL;
	char fp[BERTH_TLS_FINGERPRINT_LEN + 1];
	size_t der_len = 0;
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = check_fields(req->body, err);
	if (r < 0)
		return r;
	if (!c->trusted)
		return add_self(req, resp, err);
	if (c->restricted || c->metrics)
		return berth_error_set(err, -EACCES, BERTH_ERR_FORBIDDEN, "not authorized");
	if (json_is_true(json_object_get(req->body, "token")))
		return create_token(req, resp, err);
	b64 = berth_json_string(req->body, "certificate");
	if (!b64 || !*b64) {
		if (!c->cert_pem)
			return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
					       "No client certificate provided");
		return berth_error_set(err, -EEXIST, BERTH_ERR_CONFLICT,
				       "Client is already trusted");
	}
	if (berth_base64_decode(b64, strlen(b64), &der, &der_len) < 0 ||
	    berth_tls_cert_der_to_pem(der, der_len, &pem, fp) < 0)
		return berth_error_set(err, -EINVAL, BERTH_ERR_BAD_REQUEST,
				       "Invalid certificate material");
	cert = cert_object(req->body, fp, pem, "");
	if (cert)
		name_from_cn(cert);
	return cert ? add_certificate(req, resp, cert, err) : -ENOMEM;
}

static int cert_etag(const json_t *cert, char **ret)
{
	json_auto_t *w = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?}", "name",
				   json_object_get(cert, "name"), "type",
				   json_object_get(cert, "type"), "restricted",
				   json_object_get(cert, "restricted"), "projects",
				   json_object_get(cert, "projects"), "certificate",
				   json_object_get(cert, "certificate"));

	*ret = w ? api_etag(w) : NULL;
	return *ret ? 0 : -ENOMEM;
}

static int get_certificate(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	json_auto_t *cert = NULL;
	int r = db_certificate_get(req->d->db, req->params[0], &cert, err);

	if (r < 0)
		return r;
	r = cert_etag(cert, &resp->etag);
	if (r < 0)
		return r;
	return api_sync(resp, TAKE_PTR(cert));
}

static int update_certificate(struct api_request *req, struct api_response *resp,
			      struct berth_error *err, bool patch)
{
	json_auto_t *cert = NULL;
	_cleanup_free_ char *etag = NULL;
	static const char *const fields[] = {"name", "type", "restricted", "projects"};
	int r;

	r = api_require_body(req, err);
	if (r < 0)
		return r;
	r = check_fields(req->body, err);
	if (r < 0)
		return r;
	r = db_certificate_get(req->d->db, req->params[0], &cert, err);
	if (r < 0)
		return r;
	r = cert_etag(cert, &etag);
	if (r < 0)
		return r;
	r = api_check_etag(req, etag, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		json_t *v = json_object_get(req->body, fields[i]);

		if (v && !json_is_null(v))
			json_object_set(cert, fields[i], v);
		else if (!patch && streq(fields[i], "restricted"))
			json_object_set_new(cert, "restricted", json_false());
		else if (!patch && streq(fields[i], "projects"))
			json_object_set_new(cert, "projects", json_array());
	}
	r = db_certificate_update(req->d->db, berth_json_string(cert, "fingerprint"), cert, err);
	if (r < 0)
		return r;
	r = trust_reload(req->d->trust, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

static int put_certificate(struct api_request *req, struct api_response *resp,
			   struct berth_error *err)
{
	return update_certificate(req, resp, err, false);
}

static int patch_certificate(struct api_request *req, struct api_response *resp,
			     struct berth_error *err)
{
	return update_certificate(req, resp, err, true);
}

static int delete_certificate(struct api_request *req, struct api_response *resp,
			      struct berth_error *err)
{
	json_auto_t *cert = NULL;
	int r = db_certificate_get(req->d->db, req->params[0], &cert, err);

	if (r < 0)
		return r;
	r = db_certificate_delete(req->d->db, berth_json_string(cert, "fingerprint"), err);
	if (r < 0)
		return r;
	r = trust_reload(req->d->trust, err);
	if (r < 0)
		return r;
	return api_sync(resp, NULL);
}

int api_remote_token_expiry(struct api_request *req, uint64_t fallback, uint64_t *ret,
			    struct berth_error *err)
{
	json_auto_t *config = NULL;
	const char *v;
	int r = db_server_config_get(req->d->db, &config, err);

	if (r < 0)
		return r;
	v = berth_json_string(config, "core.remote_token_expiry");
	*ret = fallback;
	if (v && *v) {
		r = api_parse_expiry(v, ret);
		if (r < 0)
			return berth_error_set(err, r, BERTH_ERR_INTERNAL,
					       "Invalid core.remote_token_expiry \"%s\"", v);
	}
	return 0;
}

int api_parse_expiry(const char *v, uint64_t *ret)
{
	static const struct {
		char unit;
		uint64_t seconds;
	} units[] = {{'S', 1},	    {'M', 60},	       {'H', 3600},	  {'d', 86400},
		     {'w', 604800}, {'m', 30 * 86400}, {'y', 365 * 86400}};
	char *end;
	unsigned long long n;

	if (!v[0] || v[0] < '0' || v[0] > '9')
		return -EINVAL;
	n = strtoull(v, &end, 10);
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (end[0] == units[i].unit && end[1] == '\0' && n > 0) {
			*ret = n * units[i].seconds;
			return 0;
		}
	return -EINVAL;
}

const struct api_route api_certificate_routes[] = {
	{"GET", "/1.0/certificates", get_certificates, NULL},
	{"POST", "/1.0/certificates", post_certificates, NULL},
	{"GET", "/1.0/certificates/{}", get_certificate, NULL},
	{"PUT", "/1.0/certificates/{}", put_certificate, NULL},
	{"PATCH", "/1.0/certificates/{}", patch_certificate, NULL},
	{"DELETE", "/1.0/certificates/{}", delete_certificate, NULL},
	{0},
};

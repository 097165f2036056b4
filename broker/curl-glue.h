/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libcurl's multi interface driven by sd-event (the pattern of systemd's curl-util.c): curl tells us
 * which sockets to watch and when its one timer is due, sd-event tells curl when something
 * happened, and finished transfers are handed to one completion callback, one per dispatch of a
 * defer source at the glue's priority. Single-threaded.
 */

#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "common/macro.h"

typedef struct CurlGlue CurlGlue;

/**
 * CurlGlueFinished - a transfer ended (successfully or not)
 * @g:        the glue
 * @easy:     the handle; still added to the multi handle: the callback removes it with
 *            curl_glue_remove() (and may free it)
 * @result:   curl's result code
 * @userdata: as given to curl_glue_new()
 */
typedef void (*CurlGlueFinished)(CurlGlue *g, CURL *easy, CURLcode result, void *userdata);

int curl_glue_new(sd_event *e, CurlGlueFinished on_finished, void *userdata, CurlGlue **ret);
CurlGlue *curl_glue_free(CurlGlue *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(CurlGlue *, curl_glue_free);

void curl_glue_set_priority(CurlGlue *g, int64_t priority);
void curl_glue_raise(CurlGlue *g);

int curl_glue_add(CurlGlue *g, CURL *easy);
void curl_glue_remove(CurlGlue *g, CURL *easy);

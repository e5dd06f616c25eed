"""The tone-transfer page and its server: the browser runtime of an export bundle.

    assets   the one list of the page's files (page/, export's runner, the vendored npm files)
    server   `tonesweep serve`: the page and the bundles under a folder, on 127.0.0.1
    page/    index.html (play.html in a bundle), app.mjs, features.mjs, wav.mjs
"""

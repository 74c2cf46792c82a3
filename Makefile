# CrackDesk: `make run` opens the app on a generated demo folder, `make test` runs every test.
# Both set up everything first (Debian libraries for Qt, .venv with the app, training and test packages);
# re-running is fast because each step leaves a stamp and only re-runs when its inputs change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEMO := $(VENV)/demo
QT_DEBS := libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3
# Qt's xcb platform (a real X display): what `ldd` on PySide6's libqxcb.so and libQt6XcbQpa.so needs.
XCB_DEBS := libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-randr0 libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 \
	libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
# The desktop tests start the app on a virtual X server and look for its window with xwininfo; the report
# tests render report.html in headless Chromium and read report.pdf with poppler (pdftotext, pdftoppm).
# qemu-user runs the int8 model as a CPU without VNNI would (tests/test_int8_model.py).
TEST_DEBS := xvfb x11-utils chromium poppler-utils qemu-user
# PyInstaller's bundle needs objdump (binutils) to read shared-library dependencies.
BUILD_DEBS := binutils
DEBS := $(QT_DEBS) $(XCB_DEBS) $(TEST_DEBS) $(BUILD_DEBS)

.PHONY: bytecode run test test-fast bundle-test bench bench-gui bench-report screenshots bundle bundle-test setup clean

setup: $(VENV)/.installed $(VENV)/.sysdeps

# Debian packages Qt, the desktop tests and the bundle need; installed only when missing (needs root, as on
# these machines). A real display needs the xcb ones: the offscreen platform the other tests use does not.
$(VENV)/.sysdeps: Makefile
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

# The constraints file pins torch to the local CPU wheel so pip fails loudly instead of pulling CUDA builds.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[train,test,bundle,cluster]'
	@touch $@

# The app's bytecode compiled ahead, as pip or the bundle leave an installed app: where PYTHONDONTWRITEBYTECODE is
# set (as on these machines) every command would otherwise compile its modules again (0.05 s a start).
bytecode: setup
	@$(PY) -m compileall -q crackdesk

run: bytecode
	@test -d $(DEMO) || $(PY) -m crackdesk demo $(DEMO)
	$(PY) -m crackdesk gui $(DEMO)

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not bundle"

test-fast: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow and not bundle"

# Builds the bundle from the committed tree, then runs its executable in a clean environment.
bundle-test: bundle
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m bundle tests/test_bundle.py

bench: bytecode
	$(PY) scripts/bench_classify.py
	$(PY) scripts/bench_photos.py

bench-report: setup
	$(PY) scripts/bench_report.py

bench-gui: setup
	QT_QPA_PLATFORM=offscreen $(PY) scripts/bench_gui.py --images 40000

screenshots: setup
	QT_QPA_PLATFORM=offscreen $(PY) scripts/screenshots.py docs
	$(PY) scripts/report_screenshot.py docs

bundle: setup
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN crackdesk.spec

clean:
	rm -rf build dist .pytest_cache

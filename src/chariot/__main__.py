from chariot.cli.app import main

# Guarded: process pools started with "spawn" re-import the main module in every worker.
if __name__ == "__main__":
    main()

from chariot.cli.app import main

main()
